//! Reading a line: serde-json-core does the JSON; this file finds the spans of raw values.
//!
//! serde-json-core has no raw-value type, but it borrows every key from the line (it is never
//! given an unescape buffer here), and a borrowed key's address says where it is. So a
//! value's span is recovered from the keys around it: after the key, whitespace, `:` and
//! whitespace; before the next key's opening quote, whitespace, `,` and whitespace, or before
//! the object's closing `}`. Only whitespace and that one delimiter are stepped over, in input
//! that serde-json-core has already accepted; nothing here reads JSON values.

use core::cell::Cell;
use core::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json_core::de::Deserializer;

use super::error::from_json;
use super::{Body, EnvelopeError, Field, JsonStr, MAX_DEPTH};

/// JSON's whitespace (RFC 8259; the same four bytes serde-json-core skips).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Refuses nesting deeper than [`MAX_DEPTH`] before the recursive parser sees the line, and a
/// `"` outside a string that does not follow `{`, `[`, `,` or `:` (not JSON; and serde-json-core
/// would skip it inside an unknown scalar, so this count and its parse would disagree on what
/// is inside a string). Brackets inside strings do not count.
fn check_depth(text: &[u8]) -> Result<(), EnvelopeError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut prev = b'[';
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                prev = b'"';
            }
            continue;
        }
        match b {
            b'"' if matches!(prev, b'{' | b'[' | b',' | b':') => in_string = true,
            b'"' => return Err(EnvelopeError::Syntax),
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(EnvelopeError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if !is_ws(b) {
            prev = b;
        }
    }
    Ok(())
}

/// Where `part`, borrowed from `text`, starts in it.
fn offset_in(text: &str, part: &str) -> Option<usize> {
    let at = part.as_ptr().addr().checked_sub(text.as_ptr().addr())?;
    (at.checked_add(part.len())? <= text.len()).then_some(at)
}

/// The span of the value whose key's text ends at `key_end` (at its closing quote), given the
/// next key's text start (after its opening quote) or, for the last key, the position of the
/// object's closing `}`.
fn value_span(text: &str, key_end: usize, next: Next) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut start = key_end + 1;
    while is_ws(*bytes.get(start)?) {
        start += 1;
    }
    (*bytes.get(start)? == b':').then_some(())?;
    start += 1;
    while is_ws(*bytes.get(start)?) {
        start += 1;
    }
    let mut end = match next {
        Next::Key(key_start) => {
            let mut end = key_start.checked_sub(1)?;
            while is_ws(*bytes.get(end.checked_sub(1)?)?) {
                end -= 1;
            }
            (*bytes.get(end.checked_sub(1)?)? == b',').then_some(())?;
            end - 1
        }
        Next::Close(close) => close,
    };
    while is_ws(*bytes.get(end.checked_sub(1)?)?) {
        end -= 1;
    }
    (start < end).then_some((start, end))
}

#[derive(Clone, Copy)]
enum Next {
    /// The next key's text starts here.
    Key(usize),
    /// The object's closing brace is here.
    Close(usize),
}

/// The position of the last non-whitespace byte (the top-level object's `}`).
fn last_non_ws(text: &str) -> Option<usize> {
    text.as_bytes().iter().rposition(|&b| !is_ws(b))
}

/// A string borrowed from the line as written (keys and string values).
struct Borrowed<'a>(&'a str);

impl<'de: 'a, 'a> de::Deserialize<'de> for Borrowed<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(core::marker::PhantomData<&'a str>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Borrowed<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Borrowed(s))
            }
        }
        d.deserialize_str(V(core::marker::PhantomData))
    }
}

/// The first defect a visitor found, kept apart from serde's error so that it stays typed.
type Found = Cell<Option<EnvelopeError>>;

fn fail<E: de::Error>(found: &Found, error: EnvelopeError) -> E {
    found.set(Some(error));
    E::custom("")
}

fn json_str<'a, E: de::Error>(found: &Found, s: Borrowed<'a>) -> Result<JsonStr<'a>, E> {
    let s = JsonStr(s.0);
    s.check().map_err(|e| fail(found, e))?;
    Ok(s)
}

/// What the top-level object's visitor collects.
#[derive(Default)]
struct Top<'a> {
    src: Option<JsonStr<'a>>,
    dest: Option<JsonStr<'a>>,
    body: Option<BodyFields<'a>>,
    /// Where the `body` key's text ends, and where the key after it starts.
    body_key_end: Option<usize>,
    after_body: Option<usize>,
}

#[derive(Default)]
struct BodyFields<'a> {
    kind: Option<JsonStr<'a>>,
    msg_id: Option<u64>,
    in_reply_to: Option<u64>,
}

struct TopSeed<'s, 'a> {
    text: &'a str,
    found: &'s Found,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = Top<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Maelstrom message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let found = self.found;
        let mut top = Top::default();
        let mut body_was_last = false;
        while let Some(key) = map.next_key::<Borrowed<'de>>()? {
            let at =
                offset_in(self.text, key.0).ok_or_else(|| fail(found, EnvelopeError::Syntax))?;
            if body_was_last {
                top.after_body = Some(at);
                body_was_last = false;
            }
            match key.0 {
                "src" | "dest" => {
                    let slot = if key.0 == "src" {
                        &mut top.src
                    } else {
                        &mut top.dest
                    };
                    if slot.is_some() {
                        return Err(fail(found, EnvelopeError::DuplicateKey));
                    }
                    let value = map.next_value::<Borrowed<'de>>()?;
                    *slot = Some(json_str(found, value)?);
                }
                "body" => {
                    if top.body.is_some() {
                        return Err(fail(found, EnvelopeError::DuplicateKey));
                    }
                    top.body = Some(map.next_value_seed(BodySeed { found })?);
                    top.body_key_end = Some(at + key.0.len());
                    body_was_last = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

struct BodySeed<'s> {
    found: &'s Found,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = BodyFields<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<BodyFields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = BodyFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message body")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BodyFields<'de>, A::Error> {
        let found = self.found;
        let mut body = BodyFields::default();
        let (mut seen_msg_id, mut seen_in_reply_to) = (false, false);
        while let Some(key) = map.next_key::<Borrowed<'de>>()? {
            match key.0 {
                "type" => {
                    if body.kind.is_some() {
                        return Err(fail(found, EnvelopeError::DuplicateKey));
                    }
                    let value = map.next_value::<Borrowed<'de>>()?;
                    body.kind = Some(json_str(found, value)?);
                }
                "msg_id" | "in_reply_to" => {
                    let (seen, slot) = if key.0 == "msg_id" {
                        (&mut seen_msg_id, &mut body.msg_id)
                    } else {
                        (&mut seen_in_reply_to, &mut body.in_reply_to)
                    };
                    if core::mem::replace(seen, true) {
                        return Err(fail(found, EnvelopeError::DuplicateKey));
                    }
                    // `null` is taken as absent.
                    *slot = map.next_value::<Option<u64>>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(body)
    }
}

/// Runs a seed over the whole of `text` with serde-json-core, keeping the visitors' own error.
fn run<'a, S: DeserializeSeed<'a>>(
    text: &'a str,
    found: &Found,
    seed: S,
) -> Result<S::Value, EnvelopeError> {
    let mut de = Deserializer::new(text.as_bytes(), None);
    let value = seed
        .deserialize(&mut de)
        .map_err(|e| found.take().unwrap_or_else(|| from_json(e)))?;
    de.end().map_err(from_json)?;
    Ok(value)
}

pub(super) fn envelope(line: &[u8]) -> Result<super::Envelope<'_>, EnvelopeError> {
    let text = core::str::from_utf8(line).map_err(|_| EnvelopeError::NotUtf8)?;
    check_depth(line)?;
    let found = Cell::new(None);
    let top = run(
        text,
        &found,
        TopSeed {
            text,
            found: &found,
        },
    )?;
    let src = top.src.ok_or(EnvelopeError::MissingField(Field::Src))?;
    let dest = top.dest.ok_or(EnvelopeError::MissingField(Field::Dest))?;
    let body = top.body.ok_or(EnvelopeError::MissingField(Field::Body))?;
    let kind = body.kind.ok_or(EnvelopeError::MissingField(Field::Type))?;
    let key_end = top.body_key_end.ok_or(EnvelopeError::Syntax)?;
    let next = match top.after_body {
        Some(at) => Next::Key(at),
        None => Next::Close(last_non_ws(text).ok_or(EnvelopeError::Syntax)?),
    };
    let (start, end) = value_span(text, key_end, next).ok_or(EnvelopeError::Syntax)?;
    let raw = text.get(start..end).ok_or(EnvelopeError::Syntax)?;
    if !(raw.starts_with('{') && raw.ends_with('}')) {
        return Err(EnvelopeError::Syntax);
    }
    Ok(super::Envelope {
        src,
        dest,
        body: Body {
            kind,
            msg_id: body.msg_id,
            in_reply_to: body.in_reply_to,
            raw,
        },
    })
}

/// The seed that finds one key's value span in an object.
struct FindSeed<'s, 'a> {
    text: &'a str,
    name: &'s str,
    found: &'s Found,
}

impl<'de> DeserializeSeed<'de> for FindSeed<'_, 'de> {
    type Value = Option<(usize, Option<usize>)>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindSeed<'_, 'de> {
    type Value = Option<(usize, Option<usize>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut hit: Option<(usize, Option<usize>)> = None;
        let mut hit_was_last = false;
        while let Some(key) = map.next_key::<Borrowed<'de>>()? {
            let at = offset_in(self.text, key.0)
                .ok_or_else(|| fail(self.found, EnvelopeError::Syntax))?;
            if hit_was_last {
                if let Some((_, next)) = hit.as_mut() {
                    *next = Some(at);
                }
                hit_was_last = false;
            }
            if JsonStr(key.0).eq_str(self.name) {
                if hit.is_some() {
                    return Err(fail(self.found, EnvelopeError::DuplicateKey));
                }
                hit = Some((at + key.0.len(), None));
                hit_was_last = true;
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(hit)
    }
}

pub(super) fn raw_field<'a>(object: &'a str, name: &str) -> Result<Option<&'a str>, EnvelopeError> {
    check_depth(object.as_bytes())?;
    let found = Cell::new(None);
    let hit = run(
        object,
        &found,
        FindSeed {
            text: object,
            name,
            found: &found,
        },
    )?;
    let Some((key_end, next)) = hit else {
        return Ok(None);
    };
    let next = match next {
        Some(at) => Next::Key(at),
        None => Next::Close(last_non_ws(object).ok_or(EnvelopeError::Syntax)?),
    };
    let (start, end) = value_span(object, key_end, next).ok_or(EnvelopeError::Syntax)?;
    object
        .get(start..end)
        .map(Some)
        .ok_or(EnvelopeError::Syntax)
}

/// An error body's `code` and `text`.
pub(super) fn error_fields(body: &str) -> Result<(u64, Option<JsonStr<'_>>), EnvelopeError> {
    #[derive(serde::Deserialize)]
    struct ErrorFields<'a> {
        code: Option<u64>,
        #[serde(borrow)]
        text: Option<Borrowed<'a>>,
    }
    let (fields, _) = serde_json_core::from_str::<ErrorFields<'_>>(body).map_err(from_json)?;
    let code = fields
        .code
        .ok_or(EnvelopeError::MissingField(Field::Code))?;
    let text = match fields.text {
        Some(text) => Some(JsonStr::from_escaped(text.0)?),
        None => None,
    };
    Ok((code, text))
}
