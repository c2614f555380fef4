//! Maelstrom's message envelope: one JSON object per line, `{"src", "dest", "body"}`.
//!
//! [Maelstrom](https://github.com/jepsen-io/maelstrom) runs a distributed system's nodes as
//! processes that read messages on stdin and write messages on stdout, one JSON object per line.
//! This module parses and emits the envelope and the body's reserved fields (`type`, `msg_id`,
//! `in_reply_to`), without copying and without an allocator, and leaves the rest of the body to
//! the workload as raw JSON ([`Body::raw`], or typed through [`Body::fields`]). The JSON itself
//! is read and written by [`serde_json_core`]; see `PROTOCOL-maelstrom.md` beside this file for
//! the format and what this module accepts.
//!
//! ```
//! use sinew_proto::maelstrom::{Envelope, ErrorCode, MessageWriter};
//!
//! let line = br#"{"src":"c1","dest":"n1","body":{"type":"echo","msg_id":1,"echo":"hi"}}"#;
//! let request = Envelope::parse(line)?;
//! assert!(request.body.kind.eq_str("echo"));
//! assert_eq!(request.body.msg_id, Some(1));
//!
//! // A reply: src and dest swapped, `in_reply_to` set, the workload's fields added.
//! let mut buf = [0u8; 128];
//! let mut reply = MessageWriter::reply(&mut buf, &request, "echo_ok")?;
//! reply.msg_id(7)?.raw_field("echo", request.body.raw_field("echo")?.unwrap())?;
//! let len = reply.finish()?;
//! assert_eq!(
//!     &buf[..len],
//!     br#"{"src":"n1","dest":"c1","body":{"type":"echo_ok","in_reply_to":1,"msg_id":7,"echo":"hi"}}"#
//! );
//! # assert_eq!(ErrorCode::from_code(13), ErrorCode::Crash);
//! # Ok::<(), sinew_proto::maelstrom::EnvelopeError>(())
//! ```

mod codes;
mod error;
mod parse;
mod writer;

#[cfg(test)]
mod tests;

use serde_json_core::str::{EscapedStr, EscapedStringFragment};

pub use codes::ErrorCode;
pub use error::{EnvelopeError, Field};
pub use writer::MessageWriter;

/// How deeply arrays and objects may nest in one line (the envelope and its body count as
/// two). The JSON parser recurses once per level, so the bound keeps a hostile line from
/// exhausting the stack; Maelstrom's deepest bodies (transactions) nest five levels.
pub const MAX_DEPTH: usize = 32;

/// A JSON string as it appears between its quotes, escapes included (`a\"b` for `a"b`).
///
/// Borrowed from the line, never unescaped in place: compare it with [`JsonStr::eq_str`],
/// take it as a `&str` when it has no escapes ([`JsonStr::as_plain`]), or unescape it into a
/// buffer ([`JsonStr::unescape_into`]). Equality (`==`) compares the escaped text. Every
/// `JsonStr` made by [`Envelope::parse`] has valid escapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JsonStr<'a>(&'a str);

impl<'a> JsonStr<'a> {
    /// The text between the quotes, escapes as written.
    pub const fn raw(&self) -> &'a str {
        self.0
    }

    /// The string itself when it has no escapes.
    pub fn as_plain(&self) -> Option<&'a str> {
        (!self.0.contains('\\')).then_some(self.0)
    }

    /// Wraps text that is already escaped as JSON requires, checking its escapes.
    pub fn from_escaped(raw: &'a str) -> Result<JsonStr<'a>, EnvelopeError> {
        let s = JsonStr(raw);
        s.check()?;
        Ok(s)
    }

    /// Whether the escapes are valid (serde-json-core's rules: the two-character escapes and
    /// `\uXXXX` naming a Unicode scalar value — a surrogate pair is refused) and no control
    /// character appears unescaped.
    fn check(&self) -> Result<(), EnvelopeError> {
        for fragment in EscapedStr(self.0).fragments() {
            match fragment {
                // An unescaped quote can only come from `from_escaped`: the parser ends a
                // string there.
                Ok(EscapedStringFragment::NotEscaped(s))
                    if s.bytes().any(|b| b < 0x20 || b == b'"') =>
                {
                    return Err(EnvelopeError::InvalidEscape);
                }
                Ok(_) => {}
                Err(_) => return Err(EnvelopeError::InvalidEscape),
            }
        }
        Ok(())
    }

    /// The unescaped characters.
    pub fn chars(&self) -> impl Iterator<Item = Result<char, EnvelopeError>> + 'a {
        EscapedStr(self.0).fragments().flat_map(|fragment| {
            let (plain, escaped) = match fragment {
                Ok(EscapedStringFragment::NotEscaped(s)) => (s, None),
                Ok(EscapedStringFragment::Escaped(c)) => ("", Some(Ok(c))),
                Err(_) => ("", Some(Err(EnvelopeError::InvalidEscape))),
            };
            plain.chars().map(Ok).chain(escaped)
        })
    }

    /// Whether the unescaped string is `s` (`"ech\u006f"` equals `echo`).
    pub fn eq_str(&self, s: &str) -> bool {
        if let Some(plain) = self.as_plain() {
            return plain == s;
        }
        let mut expected = s.chars();
        for c in self.chars() {
            match c {
                Ok(c) if expected.next() == Some(c) => {}
                _ => return false,
            }
        }
        expected.next().is_none()
    }

    /// The unescaped string, written into `buf`.
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EnvelopeError> {
        let mut len = 0;
        for c in self.chars() {
            let c = c?;
            let end = len + c.len_utf8();
            let dst = buf.get_mut(len..end).ok_or(EnvelopeError::BufferTooSmall)?;
            c.encode_utf8(dst);
            len = end;
        }
        core::str::from_utf8(&buf[..len]).map_err(|_| EnvelopeError::InvalidEscape)
    }
}

/// One message: who sent it, to whom, and its body.
///
/// Borrows the line it was parsed from. Top-level keys other than `src`, `dest` and `body`
/// (Maelstrom adds an `id`) are skipped and not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Envelope<'a> {
    /// The sending node (`"n1"`) or client (`"c3"`).
    pub src: JsonStr<'a>,
    /// The node or client it is for.
    pub dest: JsonStr<'a>,
    /// The payload.
    pub body: Body<'a>,
}

/// A message body: its reserved fields, parsed, and the whole object as raw JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Body<'a> {
    /// `type`: what kind of message this is (`"echo"`, `"read_ok"`, `"error"`).
    pub kind: JsonStr<'a>,
    /// `msg_id`: the sender's id for a request it expects an answer to.
    pub msg_id: Option<u64>,
    /// `in_reply_to`: the `msg_id` of the request this answers.
    pub in_reply_to: Option<u64>,
    /// The body object exactly as it appears in the line, `{` to `}`, reserved fields included.
    pub raw: &'a str,
}

impl<'a> Envelope<'a> {
    /// Parses one line (a trailing `\n` or `\r\n` and other whitespace around the object are
    /// allowed).
    pub fn parse(line: &'a [u8]) -> Result<Envelope<'a>, EnvelopeError> {
        parse::envelope(line)
    }

    /// The length of [`Envelope::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        // {"src":"…","dest":"…","body":…}
        const FIXED: usize = br#"{"src":"","dest":"","body":}"#.len();
        FIXED + self.src.0.len() + self.dest.0.len() + self.body.raw.len()
    }

    /// Writes the message, without a line end, into `buf`; returns the bytes written.
    ///
    /// Strings and the body are copied as they were parsed, so the output parses back to an
    /// equal envelope. On `BufferTooSmall` nothing is written.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EnvelopeError> {
        let len = self.encoded_len();
        let out = buf.get_mut(..len).ok_or(EnvelopeError::BufferTooSmall)?;
        let mut at = 0;
        for part in [
            r#"{"src":""#,
            self.src.0,
            r#"","dest":""#,
            self.dest.0,
            r#"","body":"#,
            self.body.raw,
            "}",
        ] {
            out[at..at + part.len()].copy_from_slice(part.as_bytes());
            at += part.len();
        }
        Ok(len)
    }
}

impl<'a> Body<'a> {
    /// Whether `type` is `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.kind.eq_str(kind)
    }

    /// The body's fields as `T` (a struct deriving `Deserialize`; unknown fields are skipped),
    /// read by serde-json-core. Strings are borrowed as written: without unescaping, so a
    /// `&str` field holds `a\"b` for `a"b` (use [`Body::fields_unescaped`] for those).
    pub fn fields<T: serde::Deserialize<'a>>(&self) -> Result<T, EnvelopeError> {
        serde_json_core::from_str(self.raw)
            .map(|(value, _)| value)
            .map_err(error::from_json)
    }

    /// Like [`Body::fields`], with escaped strings unescaped into `scratch` (as
    /// serde-json-core does it: only strings that contain escapes use the buffer, and `&str`
    /// fields cannot borrow from it, so take those as `heapless::String`).
    pub fn fields_unescaped<T: serde::Deserialize<'a>>(
        &self,
        scratch: &mut [u8],
    ) -> Result<T, EnvelopeError> {
        serde_json_core::from_str_escaped(self.raw, scratch)
            .map(|(value, _)| value)
            .map_err(error::from_json)
    }

    /// One field of the body as raw JSON text (`"hi"` with its quotes, `[1,2]`, `{…}`), or
    /// `None` when the body has no such key (compared unescaped, as [`JsonStr::eq_str`] does).
    /// For forwarding a value without knowing its type.
    pub fn raw_field(&self, name: &str) -> Result<Option<&'a str>, EnvelopeError> {
        parse::raw_field(self.raw, name)
    }
}

/// An error body: `{"type":"error","in_reply_to":…,"code":…,"text":…}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ErrorBody<'a> {
    /// The `msg_id` of the request that failed.
    pub in_reply_to: Option<u64>,
    /// What went wrong.
    pub code: ErrorCode,
    /// The optional free-form explanation.
    pub text: Option<JsonStr<'a>>,
}

impl<'a> ErrorBody<'a> {
    /// The error in `body`: [`EnvelopeError::UnexpectedType`] when its type is not `error`,
    /// [`EnvelopeError::MissingField`] without a `code`.
    pub fn parse(body: &Body<'a>) -> Result<ErrorBody<'a>, EnvelopeError> {
        if !body.is("error") {
            return Err(EnvelopeError::UnexpectedType);
        }
        let (code, text) = parse::error_fields(body.raw)?;
        Ok(ErrorBody {
            in_reply_to: body.in_reply_to,
            code: ErrorCode::from_code(code),
            text,
        })
    }
}
