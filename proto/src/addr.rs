//! The wire form of a socket address, shared by the health and DHT formats: 16 address bytes
//! (IPv6, or IPv4 in IPv4-mapped form `::ffff:a.b.c.d`) and a big-endian port.
//!
//! An address that names no host — `::`, `0.0.0.0` / `::ffff:0.0.0.0` — or port 0 is refused on
//! both sides, so that everything a parser accepts encodes back to the same bytes.

use core::net::{IpAddr, Ipv6Addr, SocketAddr};

/// `::ffff:0.0.0.0`: the unspecified IPv4 address in IPv4-mapped form.
const MAPPED_UNSPECIFIED: u128 = 0xffff_0000_0000;

/// The address as the 128-bit number it travels as (IPv4 mapped).
#[inline]
pub(crate) fn to_bits(addr: &SocketAddr) -> u128 {
    match addr {
        SocketAddr::V4(a) => MAPPED_UNSPECIFIED | u128::from(a.ip().to_bits()),
        SocketAddr::V6(a) => a.ip().to_bits(),
    }
}

/// Whether an address (as [`to_bits`] gives it) and port name a host.
#[inline]
pub(crate) fn is_valid(bits: u128, port: u16) -> bool {
    port != 0 && bits != 0 && bits != MAPPED_UNSPECIFIED
}

/// The socket address of wire bits and a port; IPv4-mapped addresses come out as IPv4.
#[inline]
pub(crate) fn from_bits(bits: u128, port: u16) -> SocketAddr {
    let ip6 = Ipv6Addr::from_bits(bits);
    let ip = match ip6.to_ipv4_mapped() {
        Some(ip4) => IpAddr::V4(ip4),
        None => IpAddr::V6(ip6),
    };
    SocketAddr::new(ip, port)
}

/// An arbitrary IP address that is valid on the wire (for round-trip fuzzing).
#[cfg(feature = "arbitrary")]
pub(crate) fn arbitrary_ip(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<IpAddr> {
    let bits = if u.arbitrary()? {
        MAPPED_UNSPECIFIED | u128::from(u.arbitrary::<u32>()?.max(1))
    } else {
        u.arbitrary::<u128>()?
    };
    let bits = if is_valid(bits, 1) { bits } else { 1 };
    Ok(from_bits(bits, 1).ip())
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

    #[test]
    fn round_trips_and_refuses_unspecified() {
        for text in [
            "127.0.0.1:80",
            "[2001:db8::1]:53",
            "[::1]:1",
            "255.255.255.255:65535",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let bits = to_bits(&addr);
            assert!(is_valid(bits, addr.port()), "{text}");
            assert_eq!(from_bits(bits, addr.port()), addr);
        }
        for text in ["0.0.0.0:80", "[::]:80", "[::ffff:0.0.0.0]:80", "10.0.0.1:0"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert!(!is_valid(to_bits(&addr), addr.port()), "{text}");
        }
    }
}
