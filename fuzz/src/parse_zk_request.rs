//! `parse_zk_request`: the client-to-server decoders of the ZooKeeper codec on the same bytes.
//!
//! [`Request::parse`] and [`ConnectRequest::parse`] run on the input as a frame's payload and,
//! when the input starts with a whole frame, on that frame's payload as [`FrameDecoder`] cuts
//! it. Checked, beyond "nothing panics":
//! * the frame decoder's answer matches the length prefix (`Partial` counts exactly the missing
//!   bytes, a negative length is `BadLength`, one above the maximum `TooLarge`);
//! * whatever parses re-encodes (into a 0xa5-filled buffer, exactly `encoded_len()` bytes, a
//!   buffer one byte short refused) to the same bytes, and parses back to the same value;
//!   `encode_framed` is the length prefix then those bytes. The format is canonical except for
//!   booleans (any non-zero byte reads as true, written back as 1: the `watch` flags, the
//!   connect request's `readOnly`) and the header that ends a multi (recognised by its `done`
//!   byte, written back as `{-1, 1, -1}`). Vectors re-encode their elements' bytes as parsed.

use sinew_proto::Error;
use sinew_proto::zk::{
    ConnectRequest, DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, FrameDecoder, FrameStatus, Request,
    RequestBody,
};

use crate::zk_check::{Exceptions, assert_reencodes, check_framed, encode_exact};

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    payload(data);
    if let Some(frame) = frame(data) {
        payload(frame);
    }
}

/// The frame at the start of `data`, if whole; checks the decoder's answer against the prefix.
pub fn frame(data: &[u8]) -> Option<&[u8]> {
    let status = FrameDecoder::new().decode(data);
    let Some(prefix) = data.first_chunk::<FRAME_HEADER_LEN>() else {
        assert_eq!(
            status,
            Ok(FrameStatus::Partial {
                needed: FRAME_HEADER_LEN - data.len()
            })
        );
        return None;
    };
    let len = i32::from_be_bytes(*prefix);
    let body = data.len() - FRAME_HEADER_LEN;
    match status {
        _ if len < 0 => {
            assert_eq!(status, Err(Error::BadLength));
            None
        }
        _ if len as usize > DEFAULT_MAX_FRAME_LEN => {
            assert_eq!(status, Err(Error::TooLarge));
            None
        }
        Ok(FrameStatus::Partial { needed }) => {
            assert!(body < len as usize && needed == len as usize - body);
            None
        }
        Ok(FrameStatus::Complete { frame, consumed }) => {
            assert_eq!(consumed, FRAME_HEADER_LEN + len as usize);
            assert_eq!(frame, &data[FRAME_HEADER_LEN..consumed]);
            Some(frame)
        }
        Err(error) => panic!("{error:?} for a frame of length {len}"),
    }
}

fn payload(bytes: &[u8]) {
    if let Ok(request) = Request::parse(bytes) {
        let encoded = encode_exact(request.encoded_len(), |buf| request.encode(buf));
        let multi = matches!(
            request.body,
            RequestBody::Multi(_) | RequestBody::MultiRead(_)
        );
        let exceptions = Exceptions {
            booleans: true,
            multi_end: multi,
        };
        assert_reencodes(bytes, &encoded, exceptions);
        assert_eq!(Request::parse(&encoded), Ok(request));
        check_framed(&encoded, |buf| request.encode_framed(buf));
    }
    if let Ok(connect) = ConnectRequest::parse(bytes) {
        let encoded = encode_exact(connect.encoded_len(), |buf| connect.encode(buf));
        let exceptions = Exceptions {
            booleans: true,
            multi_end: false,
        };
        assert_reencodes(bytes, &encoded, exceptions);
        assert_eq!(ConnectRequest::parse(&encoded), Ok(connect));
        check_framed(&encoded, |buf| connect.encode_framed(buf));
    }
}
