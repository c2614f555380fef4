//! The seed writer of `health_node`: the bytes that `Arbitrary` decodes into a [`Script`].

use core::net::SocketAddr;

use super::{Advance, EntryChoice, NonceChoice, Op, Script, Source};

/// The bytes that `Arbitrary` decodes into a script: its inverse, for writing seeds that say
/// what they do. Follows `arbitrary` 1.x's format: integers little-endian, `bool` one byte, an
/// enum variant a `u32` scaled to the variant count, `Option` a `bool` then the value, a `Vec`
/// (and the op list) each element after a `true` byte, then a `false` one.
pub fn encode(script: &Script) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(script.seed.to_le_bytes());
    out.push(u8::from(script.default_capacities));
    let c = &script.config;
    for ms in [c.check_ms, c.timeout_ms, c.table_ms] {
        out.extend(ms.to_le_bytes());
    }
    out.push(u8::from(c.learn_from_requests));
    out.push(u8::from(c.local));
    for op in &script.ops {
        out.push(1);
        encode_op(&mut out, op);
    }
    out
}

/// The `u32` that the derive turns into variant `index` of `count`: `(x * count) >> 32`.
fn variant(out: &mut Vec<u8>, index: u64, count: u64) {
    let x = (index << 32).div_ceil(count);
    out.extend((x as u32).to_le_bytes());
}

fn encode_source(out: &mut Vec<u8>, source: Source) {
    match source {
        Source::Known(i) => {
            variant(out, 0, 3);
            out.push(i);
        }
        Source::Destination => variant(out, 1, 3),
        Source::Any(addr) => {
            variant(out, 2, 3);
            match addr {
                SocketAddr::V4(v4) => {
                    out.push(1);
                    out.extend(u32::from(*v4.ip()).to_le_bytes());
                    out.extend(v4.port().to_le_bytes());
                }
                SocketAddr::V6(v6) => {
                    out.push(0);
                    out.extend(u128::from(*v6.ip()).to_le_bytes());
                    out.extend(v6.port().to_le_bytes());
                    out.extend(v6.flowinfo().to_le_bytes());
                    out.extend(v6.scope_id().to_le_bytes());
                }
            }
        }
    }
}

fn encode_op(out: &mut Vec<u8>, op: &Op) {
    const OPS: u64 = 12;
    match op {
        Op::Datagram { from, bytes } => {
            variant(out, 0, OPS);
            encode_source(out, *from);
            for &b in bytes {
                out.extend([1, b]);
            }
            out.push(0);
        }
        Op::Request { from, nonce, table } => {
            variant(out, 1, OPS);
            encode_source(out, *from);
            match nonce {
                NonceChoice::Fresh(nonce) => {
                    variant(out, 0, 2);
                    out.extend(nonce.as_bytes());
                }
                NonceChoice::Recent(which) => {
                    variant(out, 1, 2);
                    out.push(*which);
                }
            }
            match table {
                None => out.push(0),
                Some((start, len)) => {
                    out.push(1);
                    out.extend(start.to_le_bytes());
                    out.extend(len.to_le_bytes());
                }
            }
        }
        Op::Answer {
            which,
            from,
            page,
            flips,
        } => {
            variant(out, 2, OPS);
            out.push(*which);
            match from {
                None => out.push(0),
                Some(source) => {
                    out.push(1);
                    encode_source(out, *source);
                }
            }
            match page.start {
                None => out.push(0),
                Some(start) => {
                    out.push(1);
                    out.extend(start.to_le_bytes());
                }
            }
            match page.beyond {
                None => out.push(0),
                Some(beyond) => out.extend([1, beyond]),
            }
            for entry in &page.entries {
                out.push(1);
                match entry {
                    EntryChoice::Known(i, health) => {
                        variant(out, 0, 2);
                        // `Health` is `int_in_range(0..=3)`: one byte, modulo 4.
                        out.extend([*i, health.lives()]);
                    }
                    EntryChoice::Any(_) => unimplemented!("seeds use known addresses"),
                }
            }
            out.push(0);
            for (at, xor) in flips {
                out.push(1);
                out.extend(at.to_le_bytes());
                out.push(*xor);
            }
            out.push(0);
        }
        Op::Advance(advance) => {
            variant(out, 3, OPS);
            match *advance {
                Advance::Micros(n) => {
                    variant(out, 0, 3);
                    out.extend(n.to_le_bytes());
                }
                Advance::Millis(n) => {
                    variant(out, 1, 3);
                    out.extend(n.to_le_bytes());
                }
                Advance::Secs(n) => {
                    variant(out, 2, 3);
                    out.push(n);
                }
            }
        }
        Op::Sleep => variant(out, 4, OPS),
        Op::Alive(who, alive) => {
            variant(out, 5, OPS);
            encode_source(out, *who);
            out.push(u8::from(*alive));
        }
        Op::HandleTimeout => variant(out, 6, OPS),
        Op::PollTransmit => variant(out, 7, OPS),
        Op::Drain => variant(out, 8, OPS),
        Op::Ping(to) => {
            variant(out, 9, OPS);
            encode_source(out, *to);
        }
        Op::AddSeed(addr) => {
            variant(out, 10, OPS);
            encode_source(out, *addr);
        }
        Op::PollEvents => variant(out, 11, OPS),
    }
}
