//! Fixtures shared by the `health` bench and the `instructions` example: the messages of the
//! health protocol, and their equivalents as plain structs for the serde-style codecs it is
//! compared with (bincode 2 through its own derive, postcard through serde).
//!
//! The `sinew_*` functions are the exact operations benchmarked, out of line so that
//! `valgrind --tool=callgrind` can count the instructions of each one alone.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sinew_proto::health::{
    Health, HealthCheck, HealthKind, HealthPacket, PeerEntry, PeerTableResponse, PeerTableWriter,
};
use sinew_proto::nonce::Nonce;

/// Entries in the benchmarked peer table.
pub const PEERS: usize = 20;

/// The nonce of every benchmarked message.
pub const NONCE: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

/// bincode 2's configuration: fixed-width integers, the fastest (varint costs a branch per
/// integer and saves nothing on these messages: one u8 and small u16s).
pub const BINCODE: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
> = bincode::config::standard().with_fixed_int_encoding();

/// A health packet as a plain struct: type byte and nonce (17 bytes with every codec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct HealthWire {
    /// Type byte: 1 request, 2 response.
    pub kind: u8,
    /// The nonce.
    pub nonce: [u8; 16],
}

/// A peer-table entry as a plain struct: 16-byte address, port, status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct PeerWire {
    /// IPv6 address (IPv4-mapped for IPv4).
    pub addr: [u8; 16],
    /// UDP port.
    pub port: u16,
    /// Lives, 0..=3.
    pub status: u8,
}

/// A peer-table page as a plain struct, with the same header fields as sinew's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct PeerTableWire {
    /// Type byte (4).
    pub kind: u8,
    /// The request's nonce.
    pub nonce: [u8; 16],
    /// First entry's index.
    pub start: u16,
    /// Entries in the whole table.
    pub total: u16,
    /// This page's entries.
    pub peers: Vec<PeerWire>,
}

/// The benchmarked health packet.
pub fn health_check() -> HealthCheck {
    HealthCheck {
        kind: HealthKind::Request,
        nonce: Nonce::from_bytes(NONCE),
    }
}

/// The same packet for bincode and postcard.
pub fn health_wire() -> HealthWire {
    HealthWire {
        kind: 1,
        nonce: NONCE,
    }
}

/// The benchmarked table: [`PEERS`] IPv6 hosts (the address needs no IPv4 mapping, as the
/// 16 raw bytes of the serde structs need none).
pub fn peer_entries() -> Vec<PeerEntry> {
    (0..PEERS)
        .map(|i| PeerEntry {
            addr: format!("[2001:db8::{:x}]:{}", i + 1, 7000 + i)
                .parse()
                .unwrap(),
            health: Health::from_lives((i % 4) as u8).unwrap(),
        })
        .collect()
}

/// The same table for bincode and postcard.
pub fn peer_table_wire() -> PeerTableWire {
    let peers = peer_entries()
        .iter()
        .map(|e| {
            let std::net::IpAddr::V6(ip) = e.addr.ip() else {
                unreachable!("the fixture is IPv6")
            };
            PeerWire {
                addr: ip.octets(),
                port: e.addr.port(),
                status: e.health.lives(),
            }
        })
        .collect();
    PeerTableWire {
        kind: 4,
        nonce: NONCE,
        start: 0,
        total: PEERS as u16,
        peers,
    }
}

/// Encodes a health packet with sinew.
#[inline(never)]
pub fn sinew_health_encode(check: &HealthCheck, buf: &mut [u8]) -> usize {
    check.encode(buf).unwrap_or(0)
}

/// Validates a health packet and reads its nonce in place.
#[inline(never)]
pub fn sinew_health_decode_view(bytes: &[u8]) -> Option<u8> {
    let packet = HealthPacket::new_checked(bytes).ok()?;
    Some(packet.nonce_bytes()[15])
}

/// Parses a health packet into an owned [`HealthCheck`].
#[inline(never)]
pub fn sinew_health_decode(bytes: &[u8]) -> Option<HealthCheck> {
    HealthCheck::parse(bytes).ok()
}

/// Encodes a peer-table page with sinew.
#[inline(never)]
pub fn sinew_table_encode(entries: &[PeerEntry], buf: &mut [u8]) -> usize {
    let Ok(mut writer) =
        PeerTableWriter::new(buf, Nonce::from_bytes(NONCE), 0, entries.len() as u16)
    else {
        return 0;
    };
    for entry in entries {
        if writer.push(entry).is_err() {
            return 0;
        }
    }
    writer.finish()
}

/// Parses a peer-table page's structure (constant time), borrowing it.
#[inline(never)]
pub fn sinew_table_parse(bytes: &[u8]) -> Option<u8> {
    PeerTableResponse::parse(bytes)
        .ok()
        .map(|page| page.count())
}

/// Parses a peer-table page and walks every entry as a borrowed view, summing the ports.
#[inline(never)]
pub fn sinew_table_walk(bytes: &[u8]) -> u32 {
    match PeerTableResponse::parse(bytes) {
        Ok(page) => page.views().map(|e| u32::from(e.port())).sum(),
        Err(_) => 0,
    }
}

/// Parses a peer-table page and validates and decodes every entry (the equivalent of a serde
/// decode), summing the ports.
#[inline(never)]
pub fn sinew_table_decode(bytes: &[u8]) -> u32 {
    match PeerTableResponse::parse(bytes) {
        Ok(page) => page
            .entries()
            .map(|e| e.map_or(0, |e| u32::from(e.addr.port())))
            .sum(),
        Err(_) => 0,
    }
}

/// Encodes the health packet with bincode 2.
#[inline(never)]
pub fn bincode_health_encode(wire: &HealthWire, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(wire, buf, BINCODE).unwrap_or(0)
}

/// Decodes the health packet with bincode 2.
#[inline(never)]
pub fn bincode_health_decode(bytes: &[u8]) -> Option<HealthWire> {
    bincode::decode_from_slice(bytes, BINCODE)
        .ok()
        .map(|(w, _)| w)
}

/// Encodes the health packet with postcard.
#[inline(never)]
pub fn postcard_health_encode(wire: &HealthWire, buf: &mut [u8]) -> usize {
    postcard::to_slice(wire, buf).map_or(0, |s| s.len())
}

/// Decodes the health packet with postcard.
#[inline(never)]
pub fn postcard_health_decode(bytes: &[u8]) -> Option<HealthWire> {
    postcard::from_bytes(bytes).ok()
}

/// Encodes the peer table with bincode 2.
#[inline(never)]
pub fn bincode_table_encode(table: &PeerTableWire, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(table, buf, BINCODE).unwrap_or(0)
}

/// Decodes the peer table with bincode 2 (into a `Vec`).
#[inline(never)]
pub fn bincode_table_decode(bytes: &[u8]) -> Option<PeerTableWire> {
    bincode::decode_from_slice(bytes, BINCODE)
        .ok()
        .map(|(w, _)| w)
}

/// Encodes the peer table with postcard.
#[inline(never)]
pub fn postcard_table_encode(table: &PeerTableWire, buf: &mut [u8]) -> usize {
    postcard::to_slice(table, buf).map_or(0, |s| s.len())
}

/// Decodes the peer table with postcard (into a `Vec`).
#[inline(never)]
pub fn postcard_table_decode(bytes: &[u8]) -> Option<PeerTableWire> {
    postcard::from_bytes(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_agree() {
        let mut buf = [0u8; 508];
        let len = sinew_health_encode(&health_check(), &mut buf);
        assert_eq!(len, 17);
        let wire = health_wire();
        let mut other = [0u8; 64];
        assert_eq!(
            bincode::encode_into_slice(wire, &mut other, BINCODE).unwrap(),
            17
        );
        assert_eq!(&other[..17], &buf[..17]);
        assert_eq!(postcard::to_slice(&wire, &mut other).unwrap(), &buf[..17]);
        assert_eq!(sinew_health_decode_view(&buf[..17]), Some(0xff));
        assert_eq!(sinew_health_decode(&buf[..17]), Some(health_check()));

        let entries = peer_entries();
        let len = sinew_table_encode(&entries, &mut buf);
        assert_eq!(len, 22 + 19 * PEERS);
        assert_eq!(sinew_table_parse(&buf[..len]), Some(PEERS as u8));
        let ports: u32 = (0..PEERS as u32).map(|i| 7000 + i).sum();
        assert_eq!(sinew_table_walk(&buf[..len]), ports);
        let table = peer_table_wire();
        let mut big = [0u8; 1024];
        let n = bincode::encode_into_slice(&table, &mut big, BINCODE).unwrap();
        let (back, _): (PeerTableWire, usize) =
            bincode::decode_from_slice(&big[..n], BINCODE).unwrap();
        assert_eq!(back, table);
        let n = postcard::to_slice(&table, &mut big).unwrap().len();
        assert_eq!(
            postcard::from_bytes::<PeerTableWire>(&big[..n]).unwrap(),
            table
        );
    }
}
