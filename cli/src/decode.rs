//! `sinew decode`: one datagram in hex, decoded field by field.

use std::io::{self, Read, Write};

use clap::Subcommand;
use sinew_proto::health::{ENTRY_LEN, Message, PeerTableRequest, PeerTableResponse};
use sinew_proto::nonce::split_type_byte;

use sinew_proto::seal;

use crate::error::{EXIT_OK, Failure, plural};
use crate::key::KeyArgs;

/// What to decode: one variant per protocol message family.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum DecodeCommand {
    /// A datagram of the UDP health protocol: health request or response, peer-table request
    /// or response.
    Health {
        /// The datagram in hex; whitespace, colons and `0x` prefixes are ignored, so the
        /// output of tcpdump -X, xxd -p or Wireshark's "copy as hex" can be pasted. None (or
        /// `-`): read from stdin.
        #[arg(value_name = "HEX")]
        hex: Vec<String>,
        /// Open a sealed datagram with these keys first.
        #[command(flatten)]
        key: KeyArgs,
    },
    /// A DHT message: a UDP datagram, or a TCP frame without its 4-byte length prefix.
    Dht {
        /// The message in hex (as for `health`).
        #[arg(value_name = "HEX")]
        hex: Vec<String>,
        /// Open a sealed datagram with these keys first.
        #[command(flatten)]
        key: KeyArgs,
    },
    /// A ZooKeeper client frame, its 4-byte length first: a request, or with --connect the
    /// session's first frame, the ConnectRequest.
    ZkRequest {
        /// The frame is a ConnectRequest (the first a client sends).
        #[arg(long)]
        connect: bool,
        /// The frame in hex (as for `health`).
        #[arg(value_name = "HEX")]
        hex: Vec<String>,
    },
    /// A ZooKeeper server frame, its 4-byte length first: a reply, a watch notification, or
    /// with --op connect the session's first frame, the ConnectResponse.
    ZkReply {
        /// The op of the request answered, as named in the protocol (getData, create2, …) or
        /// by number; `connect` for a ConnectResponse. Not needed for a notification (xid -1),
        /// a ping, auth or setWatches reply, or an error reply (a bare header).
        #[arg(long, value_name = "OP", allow_negative_numbers = true)]
        op: Option<String>,
        /// The frame in hex (as for `health`).
        #[arg(value_name = "HEX")]
        hex: Vec<String>,
    },
}

/// Runs a decode command; returns the exit code: 0 decoded, 1 malformed datagram or frame,
/// 2 not hex (or, for `zk-reply`, an op that is needed and missing or unknown). The hex comes
/// from the arguments, or from `stdin` when there are none (or the only one is `-`).
///
/// # Errors
/// The failure (malformed, not hex, …), classified as [`crate::error`] says.
pub fn run(
    command: &DecodeCommand,
    out: &mut dyn Write,
    stdin: &mut dyn Read,
) -> Result<u8, Failure> {
    match command {
        DecodeCommand::ZkRequest { connect, hex } => {
            let bytes = hex_input(hex, stdin)?;
            let connect = *connect;
            decode_zk(&bytes, out, |bytes, out| {
                super::zk::write_request(bytes, connect, out)
            })
        }
        DecodeCommand::ZkReply { op, hex } => {
            let op = match op.as_deref().map(super::zk::parse_op) {
                None => super::zk::ReplyOp::NotGiven,
                Some(Ok(op)) => op,
                Some(Err(e)) => return Err(Failure::usage(format!("--op: {e}"))),
            };
            let bytes = hex_input(hex, stdin)?;
            decode_zk(&bytes, out, |bytes, out| {
                super::zk::write_reply(bytes, op, out)
            })
        }
        DecodeCommand::Dht { hex, key } => {
            let bytes = unseal(hex_input(hex, stdin)?, key, out)?;
            match super::dht::write_message(&bytes, out)? {
                Ok(()) => Ok(EXIT_OK),
                Err(e) => Err(Failure::failed(format!(
                    "malformed DHT message ({}): {e}",
                    plural(bytes.len() as u64, "byte", "bytes")
                ))),
            }
        }
        DecodeCommand::Health { hex, key } => {
            let bytes = unseal(hex_input(hex, stdin)?, key, out)?;
            match write_health(&bytes, out)? {
                Ok(()) => Ok(EXIT_OK),
                Err(e) => Err(Failure::failed(format!(
                    "malformed health datagram ({}): {e}",
                    plural(bytes.len() as u64, "byte", "bytes")
                ))),
            }
        }
    }
}

/// The inner datagram of a sealed datagram (opened with `--key-file`, its seal printed
/// first), or `bytes` as they are when they are not sealed.
fn unseal(bytes: Vec<u8>, key: &KeyArgs, out: &mut dyn Write) -> Result<Vec<u8>, Failure> {
    let sealed = bytes
        .first()
        .is_some_and(|&b| split_type_byte(b).0 == seal::VERSION);
    if !sealed {
        return Ok(bytes);
    }
    let n = plural(bytes.len() as u64, "byte", "bytes");
    if key.key_file.is_none() {
        let id = bytes
            .get(1)
            .map_or(String::new(), |id| format!(", key id {id:#04x}"));
        return Err(Failure::failed(format!(
            "sealed datagram ({n}{id}): give --key-file to open it"
        )));
    }
    let ring = key.keyring()?;
    let mut copy = bytes;
    let opened = ring
        .open(&mut copy)
        .map_err(|e| Failure::failed(format!("sealed datagram ({n}) does not open: {e}")))?;
    writeln!(
        out,
        "sealed datagram ({n}): key id {:#04x}, sender {:016x}, counter {}, {} inside",
        opened.key_id,
        opened.sender,
        opened.counter,
        plural(opened.plaintext.len() as u64, "byte", "bytes")
    )?;
    Ok(opened.plaintext.to_vec())
}

/// The bytes of the hex arguments, or of stdin when there are none or only `-`.
fn hex_input(args: &[String], stdin: &mut dyn Read) -> Result<Vec<u8>, Failure> {
    let from_stdin;
    let parts = if args.is_empty() || (args.len() == 1 && args[0] == "-") {
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("stdin: {e} (give the bytes in hex)")))?;
        from_stdin = [text];
        &from_stdin[..]
    } else {
        args
    };
    let bytes = parse_hex(parts).map_err(|e| Failure::usage(format!("not hex: {e}")))?;
    if bytes.is_empty() {
        return Err(Failure::usage(
            "no bytes given (pass them in hex as arguments or on stdin)",
        ));
    }
    Ok(bytes)
}

/// Decodes one ZooKeeper frame with `write`; returns the exit code.
fn decode_zk(
    bytes: &[u8],
    out: &mut dyn Write,
    write: impl FnOnce(&[u8], &mut dyn Write) -> io::Result<Result<(), super::zk::DecodeError>>,
) -> Result<u8, Failure> {
    match write(bytes, out)? {
        Ok(()) => Ok(EXIT_OK),
        Err(super::zk::DecodeError::Usage(e)) => Err(Failure::usage(e)),
        Err(e) => Err(Failure::failed(e.to_string())),
    }
}

/// Joins the arguments and decodes them as hex, ignoring whitespace, colons and `0x`
/// prefixes.
///
/// # Errors
/// The hex crate's error for an odd number of digits or a non-hex character.
pub fn parse_hex(parts: &[String]) -> Result<Vec<u8>, hex::FromHexError> {
    let mut digits = String::new();
    for token in parts.iter().flat_map(|p| p.split_whitespace()) {
        let token = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
            .unwrap_or(token);
        digits.extend(token.chars().filter(|&c| c != ':'));
    }
    hex::decode(digits)
}

/// Parses `datagram` with [`Message::parse`] and, if it is valid, prints every field.
///
/// # Errors
/// The outer `Err` is a write error; the inner one says why the datagram is malformed (nothing
/// is printed then).
pub fn write_health(
    datagram: &[u8],
    out: &mut dyn Write,
) -> io::Result<Result<(), sinew_proto::Error>> {
    let message = match Message::parse(datagram) {
        Ok(message) => message,
        Err(e) => return Ok(Err(e)),
    };
    let kind = message.kind();
    // The datagram parsed, so it has its type byte.
    let type_byte = datagram
        .first()
        .copied()
        .unwrap_or_else(|| kind.type_byte());
    let (version, kind_bits) = split_type_byte(type_byte);
    writeln!(out, "health datagram, {} bytes", datagram.len())?;
    writeln!(
        out,
        "  type     0x{type_byte:02x} (version {version}, kind {kind_bits}: {kind})"
    )?;
    writeln!(out, "  nonce    {}", message.nonce())?;
    match message {
        Message::HealthRequest(_) | Message::HealthResponse(_) => {}
        Message::PeerTableRequest(request) => write_table_request(&request, out)?,
        Message::PeerTableResponse(page) => write_table_response(&page, out)?,
        other => writeln!(out, "  {other:?}")?,
    }
    Ok(Ok(()))
}

fn write_table_request(request: &PeerTableRequest, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "  start    {}", request.start)?;
    writeln!(
        out,
        "  padding  {} zero bytes: room for {} entries of {ENTRY_LEN} bytes in the response",
        request.padding_len(),
        request.entry_budget()
    )
}

fn write_table_response(page: &PeerTableResponse<'_>, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "  start    {}", page.start())?;
    writeln!(out, "  total    {}", page.total())?;
    writeln!(out, "  count    {}", page.count())?;
    for (i, entry) in page.entries().enumerate() {
        // `Message::parse` validated every entry; an error here cannot happen.
        let Ok(entry) = entry else { continue };
        writeln!(
            out,
            "  entry {i:<3} addr {}  port {}  lives {}  status {}",
            entry.addr.ip(),
            entry.addr.port(),
            entry.health.lives(),
            entry.health.status()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(hex: &str) -> (Result<(), sinew_proto::Error>, String) {
        let bytes = parse_hex(&[hex.to_string()]).unwrap();
        let mut out = Vec::new();
        let result = write_health(&bytes, &mut out).unwrap();
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn hex_tolerates_whitespace_colons_and_prefixes() {
        let parts = ["0x01 00:11".to_string(), "\t2233\n".to_string()];
        assert_eq!(parse_hex(&parts).unwrap(), [0x01, 0x00, 0x11, 0x22, 0x33]);
        assert!(parse_hex(&["0g".to_string()]).is_err());
        assert!(parse_hex(&["012".to_string()]).is_err());
    }

    #[test]
    fn test_decode_health_request() {
        let (result, text) = decode("01 6b1f283a904c11ee 9f5d0242ac120002");
        assert_eq!(result, Ok(()));
        assert!(text.contains("17 bytes"), "{text}");
        assert!(
            text.contains("0x01 (version 0, kind 1: health request)"),
            "{text}"
        );
        assert!(
            text.contains("nonce    6b1f283a904c11ee9f5d0242ac120002"),
            "{text}"
        );
    }

    #[test]
    fn test_decode_table_request() {
        // type 3, nonce 00..0f, start 5, three bytes of zero padding
        let (result, text) = decode("03 000102030405060708090a0b0c0d0e0f 0005 000000");
        assert_eq!(result, Ok(()));
        assert!(text.contains("start    5"), "{text}");
        assert!(text.contains("3 zero bytes: room for 0 entries"), "{text}");
    }

    #[test]
    fn test_decode_table_response() {
        let (result, text) = decode(
            "04 000102030405060708090a0b0c0d0e0f 0003 0005 02 \
             00000000000000000000ffff7f000001 1f90 03 \
             20010db8000000000000000000000001 0035 01",
        );
        assert_eq!(result, Ok(()));
        for needle in [
            "kind 4: peer-table response",
            "start    3",
            "total    5",
            "count    2",
            "entry 0   addr 127.0.0.1  port 8080  lives 3  status Healthy",
            "entry 1   addr 2001:db8::1  port 53  lives 1  status AtRisk",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn test_decode_dht_view() {
        // A View (kind 22) from 10.0.0.3:81: one node on the left, two on the right.
        let bytes = parse_hex(&[concat!(
            "16 0000000000000009 03030303030303030303030303030303",
            " 00000000000000000000ffff0a000003 0051",
            " 01 02020202020202020202020202020202 00000000000000000000ffff0a000002 0052",
            " 02 04040404040404040404040404040404 00000000000000000000ffff0a000004 0053",
            " 05050505050505050505050505050505 20010db8000000000000000000000005 0054"
        )
        .to_string()])
        .unwrap();
        let mut out = Vec::new();
        let result = crate::dht::write_message(&bytes, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(result, Ok(()));
        for needle in [
            "DHT message, 147 bytes",
            "0x16 (version 0, View)",
            "  left        1\n    02020202020202020202020202020202 at 10.0.0.2:82\n",
            concat!(
                "  right       2\n    04040404040404040404040404040404 at 10.0.0.4:83\n",
                "    05050505050505050505050505050505 at [2001:db8::5]:84\n"
            ),
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // A ViewRequest: the header alone.
        let mut request = bytes[..43].to_vec();
        request[0] = 0x15;
        let mut out = Vec::new();
        let result = crate::dht::write_message(&request, &mut out).unwrap();
        assert_eq!(result, Ok(()));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("0x15 (version 0, ViewRequest)"), "{text}");
    }

    #[test]
    fn test_decode_dht_withheld() {
        // A Withheld (kind 23) for request 42 from 10.0.0.3:81, cookie 0x0123456789abcdef.
        let bytes = parse_hex(&[concat!(
            "17 000000000000002a 03030303030303030303030303030303",
            " 00000000000000000000ffff0a000003 0051 0123456789abcdef"
        )
        .to_string()])
        .unwrap();
        let mut out = Vec::new();
        let result = crate::dht::write_message(&bytes, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(result, Ok(()));
        for needle in [
            "DHT message, 51 bytes",
            "0x17 (version 0, Withheld)",
            "  message id  0x000000000000002a",
            "  cookie      0x0123456789abcdef",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn test_decode_malformed() {
        // 16 bytes: one short of a health request.
        let (result, text) = decode("01 6b1f283a904c11ee 9f5d0242ac1200");
        assert_eq!(result, Err(sinew_proto::Error::Truncated));
        assert!(text.is_empty());
        // 18 bytes: a health request padded by one byte.
        let (result, _) = decode("01 6b1f283a904c11ee 9f5d0242ac120002 00");
        assert_eq!(result, Err(sinew_proto::Error::TrailingBytes));
        // Version 1.
        let (result, _) = decode("21 6b1f283a904c11ee 9f5d0242ac120002");
        assert_eq!(result, Err(sinew_proto::Error::UnsupportedVersion(1)));
    }
}
