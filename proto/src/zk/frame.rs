//! The frame helpers of the jute messages (the frame codec itself is [`crate::frame`]).

/// Generates `framed_len` and `encode_framed` for a message with `encoded_len` and `encode`.
macro_rules! framed_api {
    ($name:ident<$lt:lifetime>) => {
        impl<$lt> $name<$lt> {
            /// The exact length of [`encode_framed`](Self::encode_framed)'s output: the
            /// encoded length plus the 4-byte frame length.
            pub fn framed_len(&self) -> usize {
                self.encoded_len()
                    .saturating_add($crate::frame::FRAME_HEADER_LEN)
            }

            /// Writes the message as a whole frame — its 4-byte big-endian length, then the
            /// message — into the front of `buf`; returns the bytes written.
            ///
            /// # Errors
            /// As [`encode`](Self::encode), for a buffer shorter than
            /// [`framed_len`](Self::framed_len).
            pub fn encode_framed(&self, buf: &mut [u8]) -> $crate::Result<usize> {
                $crate::frame::encode_frame(buf, |payload| self.encode(payload))
            }
        }
    };
}
pub(crate) use framed_api;

framed_api!(ConnectRequest<'a>);
framed_api!(ConnectResponse<'a>);

use super::{ConnectRequest, ConnectResponse};
