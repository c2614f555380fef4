//! jute's primitive types: readers (nom parsers), the writer, strings and vectors.
//!
//! The readers are nom parsers over `&[u8]` with a private error type that carries this crate's
//! [`Error`]; nothing of nom leaves this module tree. Fixed-size records are not read here field
//! by field: they are taken whole with [`fixed`] and read at fixed offsets (see `records.rs`).

use core::fmt;
use core::marker::PhantomData;

use nom::error::{ErrorKind, ParseError};
use nom::multi::fold_many_m_n;
use nom::number::complete::{be_i32, be_i64, be_u8};
use nom::{IResult, Parser};

use super::MAX_LEN;
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// The error of the jute parsers: one of this crate's errors.
///
/// Public only so that it can appear in the sealed [`Record`] trait; it cannot be named outside
/// the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JuteError(pub(crate) Error);

impl<I> ParseError<I> for JuteError {
    fn from_error_kind(_: I, kind: ErrorKind) -> JuteError {
        // The complete-input parsers used here fail only by running out of input; any other
        // kind would come from a combinator misused on wire data.
        JuteError(match kind {
            ErrorKind::Eof | ErrorKind::Complete => Error::Truncated,
            _ => Error::BadLength,
        })
    }

    fn append(_: I, _: ErrorKind, other: JuteError) -> JuteError {
        // Keep the innermost, most precise error.
        other
    }
}

/// The result of a jute parser: the rest of the input and the value.
pub type PResult<'a, T> = IResult<&'a [u8], T, JuteError>;

/// A parser failure with a precise error (not retried by alternatives).
pub(crate) fn fail<'a, T>(error: Error) -> PResult<'a, T> {
    Err(nom::Err::Failure(JuteError(error)))
}

/// Converts a parser result to this crate's result.
#[inline]
pub(crate) fn finish<'a, T>(result: PResult<'a, T>) -> Result<(&'a [u8], T)> {
    result.map_err(|e| match e {
        nom::Err::Error(JuteError(e)) | nom::Err::Failure(JuteError(e)) => e,
        nom::Err::Incomplete(_) => Error::Truncated,
    })
}

/// Parses a record that must fill `bytes` exactly.
#[inline]
pub(crate) fn parse_exact<'a, T: Record<'a>>(bytes: &'a [u8]) -> Result<T> {
    let (rest, value) = finish(T::read(bytes))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(Error::TrailingBytes)
    }
}

/// jute `int`.
#[inline]
pub(crate) fn int(input: &[u8]) -> PResult<'_, i32> {
    be_i32(input)
}

/// jute `long`.
#[inline]
pub(crate) fn long(input: &[u8]) -> PResult<'_, i64> {
    be_i64(input)
}

/// jute `boolean`: one byte; like Java's `DataInput.readBoolean`, any non-zero byte is true.
#[inline]
pub(crate) fn boolean(input: &[u8]) -> PResult<'_, bool> {
    be_u8.map(|byte| byte != 0).parse(input)
}

/// A fixed-size part, taken whole for reading at fixed offsets.
#[inline]
pub(crate) fn fixed<const N: usize>(input: &[u8]) -> PResult<'_, &[u8; N]> {
    match input.split_first_chunk::<N>() {
        Some((chunk, rest)) => Ok((rest, chunk)),
        None => fail(Error::Truncated),
    }
}

/// Checks a jute length or count: `None` for -1 (null); any other negative value is
/// [`Error::BadLength`], a value above [`MAX_LEN`] is [`Error::TooLarge`].
#[inline]
pub(crate) const fn check_length(len: i32) -> Result<Option<usize>> {
    match len {
        -1 => Ok(None),
        len if len < 0 => Err(Error::BadLength),
        // Non-negative, so it converts; MAX_LEN is far below i32::MAX.
        len if len as u32 as usize > MAX_LEN => Err(Error::TooLarge),
        len => Ok(Some(len as u32 as usize)),
    }
}

/// A jute length or count (see [`check_length`]).
#[inline]
fn length(input: &[u8]) -> PResult<'_, Option<usize>> {
    let (rest, len) = fixed::<4>(input)?;
    match check_length(i32::from_be_bytes(*len)) {
        Ok(len) => Ok((rest, len)),
        Err(error) => fail(error),
    }
}

/// Splits a jute `buffer` off the front of `input`: the buffer (`None` when null) and the rest.
///
/// The hot replies call this directly; [`buffer`] is the same as a nom parser.
#[inline]
pub(crate) fn split_buffer(input: &[u8]) -> Result<(Option<&[u8]>, &[u8])> {
    let Some((len, rest)) = input.split_first_chunk::<4>() else {
        return Err(Error::Truncated);
    };
    match check_length(i32::from_be_bytes(*len))? {
        None => Ok((None, rest)),
        Some(len) => match rest.split_at_checked(len) {
            Some((bytes, rest)) => Ok((Some(bytes), rest)),
            None => Err(Error::Truncated),
        },
    }
}

/// jute `buffer`: `None` is the null buffer (length -1), distinct from an empty one.
#[inline]
pub(crate) fn buffer(input: &[u8]) -> PResult<'_, Option<&[u8]>> {
    match split_buffer(input) {
        Ok((bytes, rest)) => Ok((rest, bytes)),
        Err(error) => fail(error),
    }
}

/// jute `ustring`.
#[inline]
pub(crate) fn ustring(input: &[u8]) -> PResult<'_, ZkStr<'_>> {
    buffer.map(ZkStr::from_wire).parse(input)
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Writes jute values front to back into a caller's buffer.
///
/// Every write checks the room left, so that a wrong length computation shows as
/// [`Error::BufferTooSmall`], never as a panic. The encoders size the buffer with the exact
/// `encoded_len` first, so these checks never fail in practice.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Writer<'b> {
        Writer { buf }
    }

    /// The next `N` bytes, for writing at fixed offsets.
    #[inline]
    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<&'b mut [u8; N]> {
        let buf = core::mem::take(&mut self.buf);
        match buf.split_first_chunk_mut::<N>() {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(Error::BufferTooSmall),
        }
    }

    #[inline]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let buf = core::mem::take(&mut self.buf);
        match buf.split_at_mut_checked(bytes.len()) {
            Some((head, tail)) => {
                head.copy_from_slice(bytes);
                self.buf = tail;
                Ok(())
            }
            None => Err(Error::BufferTooSmall),
        }
    }

    #[inline]
    pub(crate) fn int(&mut self, value: i32) -> Result<()> {
        *self.fixed::<4>()? = value.to_be_bytes();
        Ok(())
    }

    #[inline]
    pub(crate) fn long(&mut self, value: i64) -> Result<()> {
        *self.fixed::<8>()? = value.to_be_bytes();
        Ok(())
    }

    #[inline]
    pub(crate) fn boolean(&mut self, value: bool) -> Result<()> {
        self.fixed::<1>()?[0] = u8::from(value);
        Ok(())
    }

    /// A length or count; [`Error::TooLarge`] if it does not fit jute's `int`.
    #[inline]
    pub(crate) fn length(&mut self, len: usize) -> Result<()> {
        let len = i32::try_from(len).map_err(|_| Error::TooLarge)?;
        self.int(len)
    }

    #[inline]
    pub(crate) fn buffer(&mut self, buffer: Option<&[u8]>) -> Result<()> {
        match buffer {
            None => self.int(-1),
            Some(bytes) => {
                self.length(bytes.len())?;
                self.bytes(bytes)
            }
        }
    }

    #[inline]
    pub(crate) fn ustring(&mut self, string: ZkStr<'_>) -> Result<()> {
        self.buffer(string.to_wire())
    }

    /// [`buffer`](Self::buffer) of a buffer whose length is known to fit jute's `int` (the
    /// caller checked that the whole record's does): no range check.
    #[inline]
    pub(crate) fn fitting_buffer(&mut self, buffer: Option<&[u8]>) -> Result<()> {
        match buffer {
            None => self.int(-1),
            Some(bytes) => {
                debug_assert!(i32::try_from(bytes.len()).is_ok());
                self.int(bytes.len() as i32)?;
                self.bytes(bytes)
            }
        }
    }

    /// Bytes not written yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
}

/// Encoded length of a jute `buffer`.
#[inline]
pub(crate) const fn buffer_len(buffer: Option<&[u8]>) -> usize {
    match buffer {
        None => 4,
        Some(bytes) => 4usize.saturating_add(bytes.len()),
    }
}

// ---------------------------------------------------------------------------------------------
// The record trait
// ---------------------------------------------------------------------------------------------

/// How every jute record of this module is read, measured and written.
///
/// Sealed: public only so that [`ListItem`] can require it; it cannot be named outside the crate.
pub trait Record<'a>: Sized {
    /// The fewest bytes one encoded value takes (used to bound vector counts before walking).
    const MIN_LEN: usize = 0;
    /// Whether a vector of these is the multi framing (each element headed by a `MultiHeader`,
    /// the vector ended by a `done` header) instead of a count prefix.
    const MULTI: bool = false;
    /// Reads one value.
    fn read(input: &'a [u8]) -> PResult<'a, Self>;
    /// The exact encoded length.
    fn wire_len(&self) -> usize;
    /// Writes the value.
    fn write(&self, w: &mut Writer<'_>) -> Result<()>;
}

/// Writes `record` into the front of `buf`; returns the bytes written.
pub(crate) fn encode_record<'a, T: Record<'a>>(record: &T, buf: &mut [u8]) -> Result<usize> {
    let len = record.wire_len();
    let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
    let mut w = Writer::new(out);
    record.write(&mut w)?;
    debug_assert_eq!(w.remaining(), 0, "wire_len disagrees with write");
    Ok(len)
}

/// Generates the public `parse` / `encoded_len` / `encode` of a [`Record`].
macro_rules! record_api {
    ($name:ident<$lt:lifetime>) => {
        impl<$lt> $name<$lt> {
            /// Parses one value that must fill `bytes` exactly.
            ///
            /// # Errors
            /// [`Error::Truncated`](crate::Error::Truncated) if `bytes` ends early,
            /// [`Error::TrailingBytes`](crate::Error::TrailingBytes) if bytes are left over,
            /// [`Error::BadLength`](crate::Error::BadLength) for a negative length other than
            /// -1, [`Error::TooLarge`](crate::Error::TooLarge) for a length above the maximum.
            pub fn parse(bytes: &$lt [u8]) -> $crate::Result<$name<$lt>> {
                $crate::zk::primitives::parse_exact(bytes)
            }

            /// The exact length of [`encode`](Self::encode)'s output.
            pub fn encoded_len(&self) -> usize {
                $crate::zk::primitives::Record::wire_len(self)
            }

            /// Writes the value into the front of `buf`; returns the bytes written.
            ///
            /// # Errors
            /// [`Error::BufferTooSmall`](crate::Error::BufferTooSmall) if `buf` is shorter than
            /// [`encoded_len`](Self::encoded_len); [`Error::TooLarge`](crate::Error::TooLarge)
            /// if a string, buffer or vector is longer than jute's `int` can say.
            pub fn encode(&self, buf: &mut [u8]) -> $crate::Result<usize> {
                $crate::zk::primitives::encode_record(self, buf)
            }
        }
    };
}
pub(crate) use record_api;

// ---------------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------------

/// A jute `ustring`, borrowed: its bytes, not validated.
///
/// ZooKeeper's Java writer emits CESU-8 for characters outside the Basic Multilingual Plane, so a
/// string from the wire is not necessarily valid UTF-8: it is handed out as bytes
/// ([`as_bytes`](Self::as_bytes)) and validated only on request ([`as_str`](Self::as_str)).
///
/// A null string (length -1) is distinct from an empty one, as in jute; [`as_bytes`] gives an
/// empty slice for both and [`is_null`](Self::is_null) tells them apart.
///
/// [`as_bytes`]: Self::as_bytes
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZkStr<'a> {
    /// `None` for the null string.
    bytes: Option<&'a [u8]>,
}

impl<'a> ZkStr<'a> {
    /// The null string.
    pub const NULL: ZkStr<'static> = ZkStr { bytes: None };

    /// A string with the text `text`.
    pub const fn new(text: &'a str) -> ZkStr<'a> {
        ZkStr {
            bytes: Some(text.as_bytes()),
        }
    }

    /// A string with the bytes `bytes` (not validated).
    pub const fn from_bytes(bytes: &'a [u8]) -> ZkStr<'a> {
        ZkStr { bytes: Some(bytes) }
    }

    /// The string as a jute buffer: `None` when null.
    pub const fn from_wire(buffer: Option<&'a [u8]>) -> ZkStr<'a> {
        ZkStr { bytes: buffer }
    }

    /// The string as a jute buffer: `None` when null.
    pub const fn to_wire(self) -> Option<&'a [u8]> {
        self.bytes
    }

    /// Whether this is the null string (length -1 on the wire).
    pub const fn is_null(&self) -> bool {
        self.bytes.is_none()
    }

    /// The bytes, as sent (empty for the null string).
    pub const fn as_bytes(&self) -> &'a [u8] {
        match self.bytes {
            Some(bytes) => bytes,
            None => &[],
        }
    }

    /// The text, if the bytes are valid UTF-8.
    ///
    /// # Errors
    /// The UTF-8 error of [`core::str::from_utf8`]: a string the Java client wrote with characters
    /// outside the BMP is CESU-8 and fails here; its bytes are still available.
    pub fn as_str(&self) -> core::result::Result<&'a str, core::str::Utf8Error> {
        core::str::from_utf8(self.as_bytes())
    }

    /// The length in bytes.
    pub const fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the string has no bytes (empty or null).
    pub const fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The encoded length: 4 + the bytes.
    pub const fn encoded_len(&self) -> usize {
        4usize.saturating_add(self.len())
    }
}

impl Default for ZkStr<'_> {
    /// The empty string (not the null one).
    fn default() -> Self {
        ZkStr { bytes: Some(&[]) }
    }
}

impl<'a> From<&'a str> for ZkStr<'a> {
    fn from(text: &'a str) -> ZkStr<'a> {
        ZkStr::new(text)
    }
}

impl PartialEq<str> for ZkStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.bytes == Some(other.as_bytes())
    }
}

impl PartialEq<&str> for ZkStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl fmt::Display for ZkStr<'_> {
    /// The text, with U+FFFD for each invalid sequence; `(null)` for the null string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.bytes else {
            return f.write_str("(null)");
        };
        for chunk in bytes.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ZkStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.bytes else {
            return f.write_str("null");
        };
        match core::str::from_utf8(bytes) {
            Ok(text) => fmt::Debug::fmt(text, f),
            Err(_) => write!(f, "b\"{}\"", bytes.escape_ascii()),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for ZkStr<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self.bytes {
            None => defmt::write!(f, "null"),
            Some(bytes) => match core::str::from_utf8(bytes) {
                Ok(text) => defmt::write!(f, "{=str}", text),
                Err(_) => defmt::write!(f, "{=[u8]:x}", bytes),
            },
        }
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for ZkStr<'a> {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<ZkStr<'a>> {
        Ok(ZkStr::from_wire(u.arbitrary()?))
    }
}

impl<'a> Record<'a> for ZkStr<'a> {
    const MIN_LEN: usize = 4;

    fn read(input: &'a [u8]) -> PResult<'a, ZkStr<'a>> {
        ustring(input)
    }

    fn wire_len(&self) -> usize {
        self.encoded_len()
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.ustring(*self)
    }
}

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

/// An element type of a [`List`]: strings, ACLs, client infos, multi operations and results.
///
/// Sealed: implemented only by this module's records.
pub trait ListItem<'a>: Record<'a> + Copy {}

impl<'a> ListItem<'a> for ZkStr<'a> {}

/// A jute `vector<T>`, borrowed: either the validated bytes of a parsed message, or a slice of
/// values to encode.
///
/// Parsing validates every element once, so walking a parsed list ([`iter`](Self::iter)) cannot
/// fail: the iterator yields plain values, not `Result`s. To build a list for encoding, use
/// [`List::from_slice`] (or `From<&[T]>`); two lists are equal when their elements are, however
/// they are held.
///
/// A null vector (count -1) is distinct from an empty one ([`List::null`], [`is_null`]).
///
/// [`is_null`]: Self::is_null
pub struct List<'a, T> {
    repr: ListRepr<'a, T>,
}

enum ListRepr<'a, T> {
    Null,
    /// `count` validated elements in `bytes` (for the multi framing, without the end header).
    /// A `u32` keeps lists (and so the records holding them) small.
    Wire {
        count: u32,
        bytes: &'a [u8],
    },
    Slice(&'a [T]),
}

impl<T> Clone for ListRepr<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ListRepr<'_, T> {}

impl<T> Clone for List<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for List<'_, T> {}

impl<'a, T: ListItem<'a>> List<'a, T> {
    /// The null vector (count -1).
    pub const fn null() -> List<'a, T> {
        List {
            repr: ListRepr::Null,
        }
    }

    /// An empty vector.
    pub const fn empty() -> List<'a, T> {
        List {
            repr: ListRepr::Slice(&[]),
        }
    }

    /// A vector of `items`, for encoding.
    pub const fn from_slice(items: &'a [T]) -> List<'a, T> {
        List {
            repr: ListRepr::Slice(items),
        }
    }

    /// Whether this is the null vector.
    pub const fn is_null(&self) -> bool {
        matches!(self.repr, ListRepr::Null)
    }

    /// The number of elements (0 for the null vector).
    pub const fn len(&self) -> usize {
        match self.repr {
            ListRepr::Null => 0,
            ListRepr::Wire { count, .. } => count as usize,
            ListRepr::Slice(items) => items.len(),
        }
    }

    /// Whether there are no elements (empty or null).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements, by value.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter {
            repr: match self.repr {
                ListRepr::Null => IterRepr::Wire {
                    remaining: 0,
                    bytes: &[],
                    item: PhantomData,
                },
                ListRepr::Wire { count, bytes } => IterRepr::Wire {
                    remaining: count as usize,
                    bytes,
                    item: PhantomData,
                },
                ListRepr::Slice(items) => IterRepr::Slice(items.iter()),
            },
        }
    }

    /// Reads a count-prefixed vector, validating every element.
    fn read_counted(input: &'a [u8]) -> PResult<'a, List<'a, T>> {
        let (body, count) = length(input)?;
        let Some(count) = count else {
            return Ok((body, List::null()));
        };
        // Bound the walk by the bytes present before taking a single element.
        if count.saturating_mul(T::MIN_LEN.max(1)) > body.len() {
            return fail(Error::Truncated);
        }
        let (rest, ()) = fold_many_m_n(count, count, T::read, || (), |(), _| ()).parse(body)?;
        let bytes = &body[..body.len() - rest.len()];
        // At most MAX_LEN, so it fits.
        Ok((rest, List::wire(count as u32, bytes)))
    }

    /// Reads a multi-framed vector: headed elements until a header with `done` set.
    fn read_multi(input: &'a [u8]) -> PResult<'a, List<'a, T>> {
        let mut rest = input;
        let mut count = 0u32;
        loop {
            let (after, header) = fixed::<{ super::MULTI_HEADER_LEN }>(rest)?;
            if super::MultiHeader::from_bytes(header).done {
                let bytes = &input[..input.len() - rest.len()];
                return Ok((after, List::wire(count, bytes)));
            }
            let (after, _) = T::read(rest)?;
            rest = after;
            count = match count.checked_add(1) {
                Some(count) => count,
                None => return fail(Error::TooLarge),
            };
        }
    }

    const fn wire(count: u32, bytes: &'a [u8]) -> List<'a, T> {
        List {
            repr: ListRepr::Wire { count, bytes },
        }
    }

    /// The count and the element bytes of a list read from the wire; `None` for the null list
    /// (and for one built from a slice, which parsing never makes).
    pub(crate) const fn wire_parts(&self) -> Option<(u32, &'a [u8])> {
        match self.repr {
            ListRepr::Wire { count, bytes } => Some((count, bytes)),
            _ => None,
        }
    }

    /// The list of [`wire_parts`](Self::wire_parts) again, over `bytes` that hold the same
    /// `count` valid elements (the bytes it was read from, or those bytes rewritten element by
    /// element): they are not validated a second time.
    pub(crate) const fn from_wire_parts(count: u32, bytes: &'a [u8]) -> List<'a, T> {
        List::wire(count, bytes)
    }

    /// A list of as many valid elements as `bytes` starts with, for fuzzing round trips.
    #[cfg(feature = "arbitrary")]
    pub(crate) fn arbitrary_with(
        u: &mut arbitrary::Unstructured<'a>,
        keep: impl Fn(&T) -> bool,
    ) -> arbitrary::Result<List<'a, T>> {
        if !T::MULTI && u.ratio(1, 16)? {
            return Ok(List::null());
        }
        let len = u.arbitrary_len::<u8>()?;
        let bytes = u.bytes(len)?;
        let mut rest = bytes;
        let mut count = 0;
        while let Ok((after, item)) = T::read(rest) {
            let header_done = T::MULTI
                && rest
                    .first_chunk::<{ super::MULTI_HEADER_LEN }>()
                    .is_some_and(|h| super::MultiHeader::from_bytes(h).done);
            if header_done || !keep(&item) {
                break;
            }
            rest = after;
            count += 1;
        }
        Ok(List::wire(count, &bytes[..bytes.len() - rest.len()]))
    }
}

impl<'a, T: ListItem<'a>> Record<'a> for List<'a, T> {
    fn read(input: &'a [u8]) -> PResult<'a, List<'a, T>> {
        if T::MULTI {
            List::read_multi(input)
        } else {
            List::read_counted(input)
        }
    }

    #[inline]
    fn wire_len(&self) -> usize {
        let frame = if T::MULTI { super::MULTI_HEADER_LEN } else { 4 };
        let items = match self.repr {
            ListRepr::Null => 0,
            ListRepr::Wire { bytes, .. } => bytes.len(),
            ListRepr::Slice(items) => items
                .iter()
                .fold(0usize, |sum, item| sum.saturating_add(item.wire_len())),
        };
        frame.saturating_add(items)
    }

    #[inline]
    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        if !T::MULTI {
            match self.repr {
                ListRepr::Null => w.int(-1)?,
                _ => w.length(self.len())?,
            }
        }
        match self.repr {
            ListRepr::Null => {}
            ListRepr::Wire { bytes, .. } => w.bytes(bytes)?,
            ListRepr::Slice(items) => {
                for item in items {
                    item.write(w)?;
                }
            }
        }
        if T::MULTI {
            super::MultiHeader::END.write(w)?;
        }
        Ok(())
    }
}

impl<'a, T: ListItem<'a>> From<&'a [T]> for List<'a, T> {
    fn from(items: &'a [T]) -> List<'a, T> {
        List::from_slice(items)
    }
}

impl<'a, T: ListItem<'a>> Default for List<'a, T> {
    /// The empty vector.
    fn default() -> List<'a, T> {
        List::empty()
    }
}

impl<'a, T: ListItem<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &List<'a, T>) -> bool {
        self.is_null() == other.is_null()
            && self.len() == other.len()
            && self.iter().eq(other.iter())
    }
}

impl<'a, T: ListItem<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: ListItem<'a> + fmt::Debug> fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            return f.write_str("null");
        }
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<'a, T: ListItem<'a> + defmt::Format> defmt::Format for List<'a, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        if self.is_null() {
            defmt::write!(f, "null");
            return;
        }
        defmt::write!(f, "[");
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ", ");
            }
            defmt::write!(f, "{}", item);
        }
        defmt::write!(f, "]");
    }
}

#[cfg(feature = "arbitrary")]
impl<'a, T: ListItem<'a>> arbitrary::Arbitrary<'a> for List<'a, T> {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<List<'a, T>> {
        List::arbitrary_with(u, |_| true)
    }
}

impl<'a, T: ListItem<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;

    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

impl<'a, T: ListItem<'a>> IntoIterator for &List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;

    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

/// The elements of a [`List`], by value.
pub struct ListIter<'a, T> {
    repr: IterRepr<'a, T>,
}

enum IterRepr<'a, T> {
    Wire {
        remaining: usize,
        bytes: &'a [u8],
        item: PhantomData<T>,
    },
    Slice(core::slice::Iter<'a, T>),
}

impl<T> Clone for ListIter<'_, T> {
    fn clone(&self) -> Self {
        ListIter {
            repr: match &self.repr {
                IterRepr::Wire {
                    remaining, bytes, ..
                } => IterRepr::Wire {
                    remaining: *remaining,
                    bytes,
                    item: PhantomData,
                },
                IterRepr::Slice(iter) => IterRepr::Slice(iter.clone()),
            },
        }
    }
}

impl<T> fmt::Debug for ListIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remaining = match &self.repr {
            IterRepr::Wire { remaining, .. } => *remaining,
            IterRepr::Slice(iter) => iter.len(),
        };
        f.debug_struct("ListIter")
            .field("remaining", &remaining)
            .finish()
    }
}

impl<'a, T: ListItem<'a>> Iterator for ListIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.repr {
            IterRepr::Wire {
                remaining, bytes, ..
            } => {
                if *remaining == 0 {
                    return None;
                }
                match T::read(bytes) {
                    Ok((rest, item)) => {
                        *bytes = rest;
                        *remaining -= 1;
                        Some(item)
                    }
                    // Unreachable: the elements were validated when the list was parsed.
                    Err(_) => {
                        *remaining = 0;
                        None
                    }
                }
            }
            IterRepr::Slice(iter) => iter.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = match &self.repr {
            IterRepr::Wire { remaining, .. } => *remaining,
            IterRepr::Slice(iter) => iter.len(),
        };
        (len, Some(len))
    }
}

impl<'a, T: ListItem<'a>> ExactSizeIterator for ListIter<'a, T> {}

impl<'a, T: ListItem<'a>> core::iter::FusedIterator for ListIter<'a, T> {}
