//! The wire form of a socket address, shared by the health and DHT formats: 16 address bytes
//! (IPv6, or IPv4 in IPv4-mapped form `::ffff:a.b.c.d`) and a big-endian port.
//!
//! An address that names no host — `::`, `0.0.0.0` / `::ffff:0.0.0.0` — or port 0 is refused on
//! both sides, so that everything a parser accepts encodes back to the same bytes.
//!
//! Both directions work on the octets as they travel: an IPv6 address is copied through, an
//! IPv4 one is placed behind the fixed mapped prefix, and the checks compare whole words
//! against the two unspecified forms. Nothing goes through a 128-bit number, whose byte swaps
//! would cost more than the copy itself.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Length of an address on the wire: 16 address bytes and a 2-byte port.
pub(crate) const WIRE_LEN: usize = 18;

/// The first 12 bytes of an IPv4-mapped address (`::ffff:0:0/96`).
const MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Bytes 8..16 of `::ffff:0.0.0.0`, as a native-endian word: the second half of the one
/// unspecified address besides `::` (both have a zero first half).
const MAPPED_UNSPECIFIED_LOW: u64 = u64::from_ne_bytes([0, 0, 0xff, 0xff, 0, 0, 0, 0]);

/// Whether 16 wire address bytes name a host: neither `::` nor `::ffff:0.0.0.0`.
///
/// Every address outside `::/64` passes on its first half alone, which is the common case of a
/// routable IPv6 address.
#[inline]
pub(crate) fn is_host(octets: &[u8; 16]) -> bool {
    let (high, low) = split_words(octets);
    high != 0 || (low != 0 && low != MAPPED_UNSPECIFIED_LOW)
}

/// The two halves of an address as native-endian words (only ever compared, never computed
/// with, so their byte order does not matter).
#[inline(always)]
fn split_words(octets: &[u8; 16]) -> (u64, u64) {
    let mut high = [0; 8];
    let mut low = [0; 8];
    high.copy_from_slice(&octets[..8]);
    low.copy_from_slice(&octets[8..]);
    (u64::from_ne_bytes(high), u64::from_ne_bytes(low))
}

/// Whether a socket address can travel: it names a host (see [`is_host`]) and its port is not 0.
#[inline]
pub(crate) fn is_valid_addr(addr: &SocketAddr) -> bool {
    addr.port() != 0
        && match addr {
            SocketAddr::V4(a) => !a.ip().is_unspecified(),
            SocketAddr::V6(a) => is_host(&a.ip().octets()),
        }
}

/// `::ffff:a.b.c.d`.
#[inline(always)]
fn mapped(ip: &Ipv4Addr) -> [u8; 16] {
    let mut out = [0; 16];
    let (prefix, v4) = out.split_at_mut(MAPPED_PREFIX.len());
    prefix.copy_from_slice(&MAPPED_PREFIX);
    v4.copy_from_slice(&ip.octets());
    out
}

/// Writes `addr` in its wire form (address bytes, big-endian port) if it can travel; returns
/// `false`, having written nothing, if it cannot (the checks of [`is_valid_addr`]).
#[inline]
pub(crate) fn write(addr: &SocketAddr, out: &mut [u8; WIRE_LEN]) -> bool {
    // Each variant is checked and written on its own path, so that the octets go from the
    // address to `out` without being gathered into one value first.
    let (ip, port) = out.split_at_mut(16);
    match addr {
        SocketAddr::V4(a) => {
            if a.port() == 0 || a.ip().is_unspecified() {
                return false;
            }
            ip.copy_from_slice(&mapped(a.ip()));
            port.copy_from_slice(&a.port().to_be_bytes());
        }
        SocketAddr::V6(a) => {
            let octets = a.ip().octets();
            if a.port() == 0 || !is_host(&octets) {
                return false;
            }
            ip.copy_from_slice(&octets);
            port.copy_from_slice(&a.port().to_be_bytes());
        }
    }
    true
}

/// The socket address of wire bytes, or `None` if they name no host or port 0; IPv4-mapped
/// addresses come out as IPv4.
#[inline]
pub(crate) fn read(raw: &[u8; WIRE_LEN]) -> Option<SocketAddr> {
    let (octets, port) = raw.split_first_chunk::<16>()?;
    let port = u16::from_be_bytes([port[0], port[1]]);
    if port == 0 || !is_host(octets) {
        return None;
    }
    Some(SocketAddr::new(ip_of(octets), port))
}

/// The IP address of 16 wire bytes; IPv4-mapped addresses come out as IPv4.
#[inline]
pub(crate) fn ip_of(octets: &[u8; 16]) -> IpAddr {
    match octets.split_first_chunk::<12>() {
        Some((prefix, v4)) if *prefix == MAPPED_PREFIX => {
            IpAddr::V4(Ipv4Addr::new(v4[0], v4[1], v4[2], v4[3]))
        }
        _ => IpAddr::V6(Ipv6Addr::from(*octets)),
    }
}

/// An arbitrary IP address that is valid on the wire (for round-trip fuzzing).
#[cfg(feature = "arbitrary")]
pub(crate) fn arbitrary_ip(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<IpAddr> {
    // The draws (and so the committed seed corpora) are those of the 128-bit form this module
    // once used: a flag, then an IPv4 number or an IPv6 one; `::` and `::ffff:0.0.0.0` become ::1.
    let octets = if u.arbitrary()? {
        mapped(&Ipv4Addr::from(u.arbitrary::<u32>()?.max(1)))
    } else {
        u.arbitrary::<u128>()?.to_be_bytes()
    };
    let octets = if is_host(&octets) {
        octets
    } else {
        Ipv6Addr::LOCALHOST.octets()
    };
    Ok(ip_of(&octets))
}

/// An arbitrary socket address that is valid on the wire (for round-trip fuzzing).
#[cfg(feature = "arbitrary")]
pub(crate) fn arbitrary(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<SocketAddr> {
    let ip = arbitrary_ip(u)?;
    Ok(SocketAddr::new(ip, u.int_in_range(1..=u16::MAX)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The 16 address bytes of a socket address as they travel (IPv4 mapped), the plain way.
    fn octets(addr: &SocketAddr) -> [u8; 16] {
        match addr.ip() {
            IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
            IpAddr::V6(ip) => ip.octets(),
        }
    }

    fn wire(addr: &SocketAddr) -> Option<[u8; WIRE_LEN]> {
        let mut out = [0xa5; WIRE_LEN];
        if write(addr, &mut out) {
            Some(out)
        } else {
            assert_eq!(out, [0xa5; WIRE_LEN], "a refused address writes nothing");
            None
        }
    }

    #[test]
    fn round_trips_and_refuses_unspecified() {
        for text in [
            "127.0.0.1:80",
            "[2001:db8::1]:53",
            "[::1]:1",
            "255.255.255.255:65535",
            "0.0.0.1:9",
            "[::ffff:0.0.0.1]:9",
            "[::fffe:0:0]:9",
            "[::1:ffff:0:0]:9",
            "[1::]:9",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert!(is_valid_addr(&addr), "{text}");
            let raw = wire(&addr).unwrap_or_else(|| panic!("{text} refused"));
            assert_eq!(raw[..16], octets(&addr), "{text}");
            assert_eq!(raw[16..], addr.port().to_be_bytes(), "{text}");
            let back = read(&raw).unwrap();
            // IPv4-mapped IPv6 addresses come back as IPv4, the same host.
            assert_eq!(octets(&back), octets(&addr), "{text}");
            assert_eq!(back.port(), addr.port());
            if !text.contains("::ffff:") {
                assert_eq!(back, addr, "{text}");
            }
        }
        for text in ["0.0.0.0:80", "[::]:80", "[::ffff:0.0.0.0]:80", "10.0.0.1:0"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert!(!is_valid_addr(&addr), "{text}");
            assert_eq!(wire(&addr), None, "{text}");
            let mut raw = [0; WIRE_LEN];
            raw[..16].copy_from_slice(&octets(&addr));
            raw[16..].copy_from_slice(&addr.port().to_be_bytes());
            assert_eq!(read(&raw), None, "{text}");
        }
    }

    #[test]
    fn ipv4_travels_mapped() {
        let addr: SocketAddr = "10.1.2.3:7000".parse().unwrap();
        let raw = wire(&addr).unwrap();
        assert_eq!(
            raw,
            [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3, 0x1b, 0x58
            ]
        );
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        let mapped = |v: u32| IpAddr::V6(Ipv4Addr::from(v).to_ipv6_mapped());
        prop_oneof![
            any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from_bits(v))),
            any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            any::<u32>().prop_map(mapped),
            // The addresses that name no host, and their neighbours.
            prop_oneof![
                Just(0u128),
                Just(1),
                Just(0xffff_0000_0000),
                Just(0xffff_0000_0001)
            ]
            .prop_map(|v| IpAddr::V6(Ipv6Addr::from_bits(v))),
            Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ]
    }

    proptest! {
        /// Whatever the reader refuses, the writer refuses (writing nothing), and what it
        /// writes is exactly what the reader takes back.
        #[test]
        fn writer_and_reader_agree(ip in arb_ip(), port in prop_oneof![Just(0u16), any::<u16>()]) {
            let addr = SocketAddr::new(ip, port);
            let mut raw = [0; WIRE_LEN];
            raw[..16].copy_from_slice(&octets(&addr));
            raw[16..].copy_from_slice(&port.to_be_bytes());
            let written = wire(&addr);
            prop_assert_eq!(written.is_some(), read(&raw).is_some());
            prop_assert_eq!(written.is_some(), is_valid_addr(&addr));
            if let Some(out) = written {
                prop_assert_eq!(out, raw);
                prop_assert_eq!(octets(&read(&out).unwrap()), octets(&addr));
            }
        }
    }

    /// The octet checks agree with the arithmetic definition: a host is any address but 0 and
    /// 0xffff_0000_0000, whatever its bytes.
    #[test]
    fn is_host_matches_the_numeric_rule() {
        let mut samples = std::vec![0u128, 1, 0xffff_0000_0000, 0xffff_0000_0001, u128::MAX];
        for shift in 0..128 {
            samples.push(1 << shift);
            samples.push(0xffff_0000_0000 | (1 << shift));
            samples.push(0xffff_0000_0000 ^ (1 << shift));
        }
        for bits in samples {
            let expected = bits != 0 && bits != 0xffff_0000_0000;
            assert_eq!(is_host(&bits.to_be_bytes()), expected, "{bits:#x}");
            let ip = Ipv6Addr::from_bits(bits);
            assert_eq!(
                is_valid_addr(&SocketAddr::new(IpAddr::V6(ip), 1)),
                expected,
                "{bits:#x}"
            );
        }
    }
}
