//! Writing a message into a caller's buffer, field by field.

use serde::Serialize;

use super::{Envelope, EnvelopeError, ErrorCode, JsonStr};

/// Writes one message, `{"src":…,"dest":…,"body":{"type":…` then the fields the caller adds,
/// into a caller's buffer; [`MessageWriter::finish`] closes it and returns its length (no line
/// end).
///
/// Names and string values are escaped as JSON requires (by serde-json-core); the caller must
/// not add a name twice, nor `type`. After an error the buffer holds a partial message: drop
/// the writer.
#[derive(Debug)]
pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> MessageWriter<'b> {
    /// A message from `src` to `dest` whose body has type `kind`.
    pub fn new(
        buf: &'b mut [u8],
        src: &str,
        dest: &str,
        kind: &str,
    ) -> Result<MessageWriter<'b>, EnvelopeError> {
        let mut w = MessageWriter { buf, len: 0 };
        w.push(r#"{"src":"#)?;
        w.value(src)?;
        w.push(r#","dest":"#)?;
        w.value(dest)?;
        w.push(r#","body":{"type":"#)?;
        w.value(kind)?;
        Ok(w)
    }

    /// A reply to `request`: from its `dest` to its `src` (copied as written), with
    /// `in_reply_to` set to its `msg_id` when it has one.
    pub fn reply(
        buf: &'b mut [u8],
        request: &Envelope<'_>,
        kind: &str,
    ) -> Result<MessageWriter<'b>, EnvelopeError> {
        let mut w = MessageWriter { buf, len: 0 };
        w.push(r#"{"src":"#)?;
        w.quoted(request.dest)?;
        w.push(r#","dest":"#)?;
        w.quoted(request.src)?;
        w.push(r#","body":{"type":"#)?;
        w.value(kind)?;
        if let Some(id) = request.body.msg_id {
            w.in_reply_to(id)?;
        }
        Ok(w)
    }

    /// A complete error reply to `request`: `{"type":"error","in_reply_to":…,"code":…,"text":…}`;
    /// returns its length.
    pub fn error_reply(
        buf: &'b mut [u8],
        request: &Envelope<'_>,
        code: ErrorCode,
        text: &str,
    ) -> Result<usize, EnvelopeError> {
        let mut w = MessageWriter::reply(buf, request, "error")?;
        w.field("code", &code.code())?.field("text", text)?;
        w.finish()
    }

    /// Adds `"msg_id":id`.
    pub fn msg_id(&mut self, id: u64) -> Result<&mut Self, EnvelopeError> {
        self.field("msg_id", &id)
    }

    /// Adds `"in_reply_to":id`.
    pub fn in_reply_to(&mut self, id: u64) -> Result<&mut Self, EnvelopeError> {
        self.field("in_reply_to", &id)
    }

    /// Adds a field whose value serde-json-core serializes (integers, strings, booleans,
    /// options, slices, structs, …).
    pub fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<&mut Self, EnvelopeError> {
        self.name(name)?;
        self.value(value)?;
        Ok(self)
    }

    /// Adds a field whose value is JSON text already (a value taken from another message with
    /// [`super::Body::raw_field`]). The text is copied as it is: it must be one JSON value.
    pub fn raw_field(&mut self, name: &str, json: &str) -> Result<&mut Self, EnvelopeError> {
        self.name(name)?;
        self.push(json)?;
        Ok(self)
    }

    /// Adds a string field copied as written from a parsed message.
    pub fn str_field(
        &mut self,
        name: &str,
        value: JsonStr<'_>,
    ) -> Result<&mut Self, EnvelopeError> {
        self.name(name)?;
        self.quoted(value)?;
        Ok(self)
    }

    /// Closes the body and the message; returns the message's length.
    pub fn finish(mut self) -> Result<usize, EnvelopeError> {
        self.push("}}")?;
        Ok(self.len)
    }

    fn name(&mut self, name: &str) -> Result<(), EnvelopeError> {
        self.push(",")?;
        self.value(name)?;
        self.push(":")
    }

    fn quoted(&mut self, s: JsonStr<'_>) -> Result<(), EnvelopeError> {
        self.push("\"")?;
        self.push(s.raw())?;
        self.push("\"")
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EnvelopeError> {
        let rest = self
            .buf
            .get_mut(self.len..)
            .ok_or(EnvelopeError::BufferTooSmall)?;
        let n = serde_json_core::to_slice(value, rest).map_err(|e| match e {
            serde_json_core::ser::Error::BufferFull => EnvelopeError::BufferTooSmall,
            _ => EnvelopeError::Fields,
        })?;
        self.len += n;
        Ok(())
    }

    fn push(&mut self, s: &str) -> Result<(), EnvelopeError> {
        let end = self
            .len
            .checked_add(s.len())
            .ok_or(EnvelopeError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(EnvelopeError::BufferTooSmall)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
