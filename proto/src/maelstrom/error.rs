//! What can be wrong with a Maelstrom line.

use core::fmt;

/// Why a line is not a Maelstrom message, or why a message could not be written.
///
/// JSON's defects do not fit the byte-format [`crate::Error`], so this module has its own small
/// `Copy` error; the variants name the defect precisely enough for an error reply's `text`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The line is not UTF-8.
    NotUtf8,
    /// The line is not JSON (or not the JSON this module accepts, see `PROTOCOL-maelstrom.md`).
    Syntax,
    /// The line ended inside a value.
    Truncated,
    /// Something other than whitespace follows the object.
    TrailingCharacters,
    /// Arrays and objects nest deeper than [`super::MAX_DEPTH`].
    TooDeep,
    /// A field holds the wrong kind of value (the envelope or body not an object, `src` not a
    /// string, `msg_id` not an unsigned 64-bit integer, …).
    WrongType,
    /// A required field is absent.
    MissingField(Field),
    /// A key appears twice in one object.
    DuplicateKey,
    /// A string's escapes are invalid (or are a UTF-16 surrogate pair, which serde-json-core
    /// does not decode), or it holds an unescaped control character.
    InvalidEscape,
    /// A body's fields do not have the shape the caller's type asks for.
    Fields,
    /// A body of another type than the caller's entry point takes (not `error` for
    /// [`super::ErrorBody::parse`]).
    UnexpectedType,
    /// The output buffer is too small.
    BufferTooSmall,
}

/// A field that a message must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Field {
    /// The envelope's `src`.
    Src,
    /// The envelope's `dest`.
    Dest,
    /// The envelope's `body`.
    Body,
    /// The body's `type`.
    Type,
    /// An error body's `code`.
    Code,
}

impl Field {
    /// The key, as it appears in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Src => "src",
            Field::Dest => "dest",
            Field::Body => "body",
            Field::Type => "type",
            Field::Code => "code",
        }
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EnvelopeError::NotUtf8 => f.write_str("line is not UTF-8"),
            EnvelopeError::Syntax => f.write_str("line is not a JSON object"),
            EnvelopeError::Truncated => f.write_str("line ends inside a JSON value"),
            EnvelopeError::TrailingCharacters => f.write_str("characters after the JSON object"),
            EnvelopeError::TooDeep => f.write_str("arrays and objects nest too deeply"),
            EnvelopeError::WrongType => f.write_str("a field has the wrong JSON type"),
            EnvelopeError::MissingField(field) => write!(f, "missing field `{}`", field.name()),
            EnvelopeError::DuplicateKey => f.write_str("a key appears twice in one object"),
            EnvelopeError::InvalidEscape => f.write_str("invalid string escape"),
            EnvelopeError::Fields => f.write_str("body fields do not have the expected shape"),
            EnvelopeError::UnexpectedType => f.write_str("unexpected message type"),
            EnvelopeError::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for EnvelopeError {}

/// serde-json-core's error, classified.
pub(super) fn from_json(e: serde_json_core::de::Error) -> EnvelopeError {
    use serde_json_core::de::Error as J;
    match e {
        J::EofWhileParsingList
        | J::EofWhileParsingObject
        | J::EofWhileParsingString
        | J::EofWhileParsingNumber
        | J::EofWhileParsingValue => EnvelopeError::Truncated,
        J::TrailingCharacters => EnvelopeError::TrailingCharacters,
        J::InvalidType | J::InvalidNumber => EnvelopeError::WrongType,
        J::InvalidEscapeSequence | J::InvalidUnicodeCodePoint => EnvelopeError::InvalidEscape,
        J::EscapedStringIsTooLong => EnvelopeError::BufferTooSmall,
        J::CustomError | J::AnyIsUnsupported | J::BytesIsUnsupported => EnvelopeError::Fields,
        _ => EnvelopeError::Syntax,
    }
}
