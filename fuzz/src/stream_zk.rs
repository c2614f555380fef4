//! `stream_zk`: a byte stream of frames cut into arbitrary fragments, read the way a transport
//! reads it with [`FrameDecoder`] (append what arrives, decode, drop what was consumed).
//!
//! Checked: every whole frame comes out intact and in order, exactly when its last byte has
//! arrived; a `Partial` answer asks for exactly the bytes missing (of the prefix, then of the
//! payload); a negative length (`BadLength`) or one above the decoder's maximum (`TooLarge`) is
//! refused as soon as its 4-byte prefix is there, before any of its payload is buffered; and
//! once the whole stream has arrived nothing is left over.

use arbitrary::{Arbitrary, Result, Unstructured};
use sinew_proto::Error;
use sinew_proto::zk::{DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, FrameDecoder, FrameStatus};

/// One frame in the stream.
#[derive(Clone, Debug, Arbitrary)]
pub enum Frame {
    /// A well-formed frame with this payload.
    Good(Vec<u8>),
    /// A prefix stating this length (made negative), then these bytes.
    Negative(u32, Vec<u8>),
    /// A prefix stating the decoder's maximum plus this (at least 1), then these bytes.
    Oversized(u16, Vec<u8>),
}

/// What one input exercised, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames that came out whole.
    pub frames: u32,
    /// Partial answers checked.
    pub partials: u32,
    /// Whether a bad length was refused.
    pub refused: bool,
}

/// Runs the stream decoded from one input.
pub fn check(data: &[u8]) -> Summary {
    let mut u = Unstructured::new(data);
    run(&mut u).unwrap_or_default()
}

fn run(u: &mut Unstructured<'_>) -> Result<Summary> {
    let max = match u.int_in_range(0..=3u8)? {
        0 => DEFAULT_MAX_FRAME_LEN as u32,
        1 => u32::MAX,
        _ => u.int_in_range(0..=64u32)?,
    };
    let decoder = FrameDecoder::with_max_frame_len(max);
    let max = decoder.max_frame_len();
    let frames: Vec<Frame> = u.arbitrary()?;

    // The stream, the payloads expected (in order) and where the first bad prefix is.
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    let mut bad: Option<(usize, Error)> = None;
    for frame in &frames {
        let at = stream.len();
        let (prefix, payload, error) = match frame {
            Frame::Good(payload) if payload.len() as u64 > u64::from(max) => {
                (payload.len() as i32, payload, Some(Error::TooLarge))
            }
            Frame::Good(payload) => (payload.len() as i32, payload, None),
            Frame::Negative(len, payload) => {
                (i32::MIN | *len as i32, payload, Some(Error::BadLength))
            }
            Frame::Oversized(over, payload) => {
                let len = (u64::from(max) + u64::from(*over).max(1)).min(i32::MAX as u64);
                let error = if len > u64::from(max) {
                    Error::TooLarge
                } else {
                    // The maximum is i32::MAX: nothing can be oversized.
                    continue;
                };
                (len as i32, payload, Some(error))
            }
        };
        stream.extend_from_slice(&prefix.to_be_bytes());
        stream.extend_from_slice(payload);
        if let Some(error) = error {
            bad = Some((at, error));
            break;
        }
        expected.push(payload.clone());
    }

    let mut summary = Summary::default();
    let mut buffer: Vec<u8> = Vec::new();
    // Offset in the stream of buffer[0].
    let mut base = 0;
    let mut next = 0;
    let mut fed = 0;
    while fed < stream.len() {
        let n = u.int_in_range(1..=64usize)?.min(stream.len() - fed);
        buffer.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            match decoder.decode(&buffer) {
                Ok(FrameStatus::Complete { frame, consumed }) => {
                    let payload = expected
                        .get(next)
                        .unwrap_or_else(|| panic!("frame {next} is not in the stream"));
                    assert_eq!(frame, &payload[..], "frame {next}");
                    assert_eq!(consumed, FRAME_HEADER_LEN + payload.len());
                    next += 1;
                    summary.frames += 1;
                    buffer.drain(..consumed);
                    base += consumed;
                }
                Ok(FrameStatus::Partial { needed }) => {
                    // The frame at `base` is expected[next] (or the bad one).
                    let missing = match buffer.len() {
                        n if n < FRAME_HEADER_LEN => FRAME_HEADER_LEN - n,
                        n => FRAME_HEADER_LEN + expected[next].len() - n,
                    };
                    assert_eq!(needed, missing, "frame {next} at {base}");
                    assert!(
                        bad.is_none_or(|(at, _)| at != base || buffer.len() < FRAME_HEADER_LEN)
                    );
                    summary.partials += 1;
                    break;
                }
                Err(error) => {
                    let (at, want) = bad.expect("a good stream refused");
                    assert_eq!((base, error), (at, want), "refused at {base}");
                    // As soon as its prefix arrived: the prefix alone is refused.
                    assert_eq!(
                        decoder.decode(&buffer[..FRAME_HEADER_LEN]),
                        Err(want),
                        "a bad prefix not refused alone"
                    );
                    assert_eq!(next, expected.len(), "frames before the bad one lost");
                    summary.refused = true;
                    return Ok(summary);
                }
            }
        }
    }
    assert_eq!(next, expected.len(), "frames lost");
    assert!(buffer.is_empty() && bad.is_none(), "bytes left over");
    Ok(summary)
}
