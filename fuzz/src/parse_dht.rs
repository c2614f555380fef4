//! `parse_dht`: [`Message::parse`] on arbitrary bytes (a datagram, or a frame's payload).
//!
//! Checked, beyond "nothing panics": whatever parses re-encodes (into a 0xa5-filled buffer,
//! exactly `encoded_len()` bytes, a buffer one byte short refused, nothing after the message
//! touched) to exactly the same bytes — the format is canonical: flags and sides are 0 or 1,
//! IPv4 nodes travel only in IPv4-mapped form — and parses back to the same value; and every
//! refusal is one the header or the length predicts where it can (too large, truncated, wrong
//! version, unknown type).

use sinew_proto::Error;
use sinew_proto::dht::{HEADER_LEN, Kind, MAX_MESSAGE_LEN, Message};
use sinew_proto::nonce::split_type_byte;

use crate::zk_check::{Exceptions, assert_reencodes, encode_exact};

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    match Message::parse(data) {
        Ok(message) => {
            let encoded = encode_exact(message.encoded_len(), |buf| message.encode(buf));
            assert_reencodes(data, &encoded, Exceptions::default());
            assert_eq!(Message::parse(&encoded), Ok(message));
            assert_eq!(message.fits_datagram(), data.len() <= 508);
        }
        Err(error) => {
            if data.len() > MAX_MESSAGE_LEN {
                assert_eq!(error, Error::TooLarge);
            } else if data.len() < HEADER_LEN {
                assert_eq!(error, Error::Truncated);
            } else {
                let (version, bits) = split_type_byte(data[0]);
                match Kind::from_bits(bits) {
                    None => assert_eq!(error, Error::UnknownType(data[0])),
                    Some(kind) if version != kind.version() => {
                        assert_eq!(error, Error::UnsupportedVersion(version));
                    }
                    Some(_) => {}
                }
            }
        }
    }
}
