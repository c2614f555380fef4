//! Client-side validation of node paths, with the rules and the words of ZooKeeper's own client
//! (`PathUtils.validatePath`), so that a path the server would refuse, or read differently
//! (`xe` is not `/xe`), is refused before anything is sent.
//!
//! A valid path starts with `/`, does not end with `/` (except the root itself, and the prefix
//! of a sequential create, to which the server appends the number), has no empty node name
//! (`//`), no `.` or `..` node name, no NUL and none of the characters ZooKeeper refuses:
//! U+0001–U+001F, U+007F–U+009F, U+D800–U+F8FF (surrogates, so anything outside the Basic
//! Multilingual Plane, and the private use area) and U+FFF0–U+FFFF. Bytes that are not UTF-8
//! count as an invalid character.
//!
//! ```
//! use sinew_proto::zk::path::{PathError, validate_path};
//!
//! assert_eq!(validate_path(b"/app/config", false), Ok(()));
//! assert_eq!(validate_path(b"/app/lock-", true), Ok(()));
//! assert_eq!(validate_path(b"/app/", true), Ok(())); // the server names the child
//! assert_eq!(validate_path(b"app", false), Err(PathError::NotAbsolute));
//! assert_eq!(
//!     validate_path(b"/app/../etc", false).map_err(|e| e.to_string()),
//!     Err("relative paths not allowed @6".into())
//! );
//! let error = validate_path(b"/a//b", false).unwrap_err();
//! assert_eq!(
//!     error.with_path("/a//b").to_string(),
//!     "Invalid path string \"/a//b\" caused by empty node name specified @3"
//! );
//! ```

use core::fmt;

/// Why a path is not a valid ZooKeeper path. The positions count UTF-16 code units from the
/// path's start, as ZooKeeper's client reports them (the same as characters for every valid
/// one), saturating at `u16::MAX`.
///
/// `Display` gives ZooKeeper's client's words: the whole message for the first three, the
/// reason for the others, which the Java client puts after `Invalid path string "…" caused
/// by ` ([`with_path`](Self::with_path) writes that whole message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty (or null).
    Empty,
    /// The path does not start with `/`.
    NotAbsolute,
    /// The path ends with `/` (and is not the root, nor a sequential prefix).
    TrailingSlash,
    /// A NUL character at this position.
    NullCharacter(u16),
    /// Two `/` in a row: the second is at this position.
    EmptyNodeName(u16),
    /// A `.` or `..` node name, ending at this position.
    Relative(u16),
    /// A character ZooKeeper refuses (or bytes that are not UTF-8) at this position.
    InvalidCharacter(u16),
}

impl PathError {
    /// The message ZooKeeper's Java client gives for `path` with this error (the path quoted
    /// for the errors found inside it).
    pub fn with_path(self, path: &str) -> InvalidPath<'_> {
        InvalidPath { path, error: self }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PathError::Empty => f.write_str("Path length must be > 0"),
            PathError::NotAbsolute => f.write_str("Path must start with / character"),
            PathError::TrailingSlash => f.write_str("Path must not end with / character"),
            PathError::NullCharacter(at) => write!(f, "null character not allowed @{at}"),
            PathError::EmptyNodeName(at) => write!(f, "empty node name specified @{at}"),
            PathError::Relative(at) => write!(f, "relative paths not allowed @{at}"),
            PathError::InvalidCharacter(at) => write!(f, "invalid character @{at}"),
        }
    }
}

impl core::error::Error for PathError {}

/// A path and what is wrong with it, displayed as ZooKeeper's Java client words it
/// ([`PathError::with_path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidPath<'a> {
    /// The path refused.
    pub path: &'a str,
    /// What is wrong with it.
    pub error: PathError,
}

impl fmt::Display for InvalidPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            PathError::Empty | PathError::NotAbsolute | PathError::TrailingSlash => {
                self.error.fmt(f)
            }
            e => write!(f, "Invalid path string \"{}\" caused by {e}", self.path),
        }
    }
}

/// Checks `path` as ZooKeeper's client does before it sends a request. With `sequential`
/// (the path of a sequential create, to which the server appends a number), the path may end
/// with `/`.
///
/// # Errors
/// The first [`PathError`] found, in ZooKeeper's order: empty, not absolute, trailing `/`, then
/// the first bad node name or character from the left.
pub fn validate_path(path: &[u8], sequential: bool) -> Result<(), PathError> {
    let Some((&first, rest)) = path.split_first() else {
        return Err(if sequential {
            // The Java client checks `path + "1"`: not absolute.
            PathError::NotAbsolute
        } else {
            PathError::Empty
        });
    };
    if first != b'/' {
        return Err(PathError::NotAbsolute);
    }
    if rest.is_empty() {
        return Ok(());
    }
    if !sequential && path.last() == Some(&b'/') {
        return Err(PathError::TrailingSlash);
    }
    // Walk the characters after the leading '/', keeping the two before each one; `at` counts
    // UTF-16 code units as the Java client's index does.
    let text = match core::str::from_utf8(rest) {
        Ok(text) => text,
        Err(e) => {
            // Check the valid prefix first: an earlier defect is the one reported.
            let valid = rest.get(..e.valid_up_to()).unwrap_or_default();
            let prefix = core::str::from_utf8(valid).unwrap_or_default();
            scan(prefix, sequential, false)?;
            return Err(PathError::InvalidCharacter(utf16_at(prefix)));
        }
    };
    scan(text, sequential, true)
}

/// Scans the characters after the leading `/`. `complete`: `text` is the whole rest of the
/// path (else a prefix, whose end is not the path's end).
fn scan(text: &str, sequential: bool, complete: bool) -> Result<(), PathError> {
    let mut at: usize = 1;
    let mut before = '/';
    let mut last = '/';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let pos = saturate(at);
        // A sequential path continues with the server's number.
        let ends_name = match chars.peek() {
            Some(&next) => next == '/',
            None => complete && !sequential,
        };
        if c == '\0' {
            return Err(PathError::NullCharacter(pos));
        }
        if c == '/' && last == '/' {
            return Err(PathError::EmptyNodeName(pos));
        }
        if c == '.' && ends_name && (last == '/' || (last == '.' && before == '/')) {
            return Err(PathError::Relative(pos));
        }
        if refused(c) {
            return Err(PathError::InvalidCharacter(pos));
        }
        at += c.len_utf16();
        before = last;
        last = c;
    }
    Ok(())
}

/// The characters ZooKeeper refuses in a path (NUL apart).
fn refused(c: char) -> bool {
    matches!(c, '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..)
}

/// The UTF-16 position just after `prefix`, counting the leading `/` before it.
fn utf16_at(prefix: &str) -> u16 {
    saturate(1 + prefix.chars().map(char::len_utf16).sum::<usize>())
}

fn saturate(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn test_valid() {
        for path in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/.a",
            "/a..",
            "/...",
            "/a/.b/..c",
            "/zookeeper/quota",
            "/é/ü/日本",
            "/\u{ffef}",
        ] {
            assert_eq!(validate_path(path.as_bytes(), false), Ok(()), "{path}");
        }
    }

    #[test]
    fn test_zkcli_messages() {
        let cases: [(&[u8], bool, PathError, &str); 17] = [
            (b"", false, PathError::Empty, "Path length must be > 0"),
            (
                b"xe",
                false,
                PathError::NotAbsolute,
                "Path must start with / character",
            ),
            (
                b"",
                true,
                PathError::NotAbsolute,
                "Path must start with / character",
            ),
            (
                b"/xe/",
                false,
                PathError::TrailingSlash,
                "Path must not end with / character",
            ),
            (
                b"/a\0b",
                false,
                PathError::NullCharacter(2),
                "null character not allowed @2",
            ),
            (
                b"//",
                true,
                PathError::EmptyNodeName(1),
                "empty node name specified @1",
            ),
            (
                b"/a//b",
                false,
                PathError::EmptyNodeName(3),
                "empty node name specified @3",
            ),
            (
                b"/.",
                false,
                PathError::Relative(1),
                "relative paths not allowed @1",
            ),
            (
                b"/a/./b",
                false,
                PathError::Relative(3),
                "relative paths not allowed @3",
            ),
            (
                b"/a/..",
                false,
                PathError::Relative(4),
                "relative paths not allowed @4",
            ),
            (
                b"/../b",
                false,
                PathError::Relative(2),
                "relative paths not allowed @2",
            ),
            (
                b"/a\x01",
                false,
                PathError::InvalidCharacter(2),
                "invalid character @2",
            ),
            (
                b"/a\x7f",
                false,
                PathError::InvalidCharacter(2),
                "invalid character @2",
            ),
            (
                b"/\xc2\x85",
                false,
                PathError::InvalidCharacter(1),
                "invalid character @1",
            ),
            (
                b"/a\xff",
                false,
                PathError::InvalidCharacter(2),
                "invalid character @2",
            ),
            (
                "/a\u{1f600}".as_bytes(),
                false,
                PathError::InvalidCharacter(2),
                "invalid character @2",
            ),
            (
                "/\u{e000}".as_bytes(),
                false,
                PathError::InvalidCharacter(1),
                "invalid character @1",
            ),
        ];
        for (path, sequential, error, text) in cases {
            assert_eq!(validate_path(path, sequential), Err(error), "{path:?}");
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn test_sequential_prefix() {
        assert_eq!(validate_path(b"/a/", true), Ok(()));
        assert_eq!(validate_path(b"/a/lock-", true), Ok(()));
        // The server's number follows: "/a/." + "1" is a name, "." alone is not.
        assert_eq!(validate_path(b"/a/.", true), Ok(()));
        assert_eq!(validate_path(b"/a/./b", true), Err(PathError::Relative(3)));
        assert_eq!(validate_path(b"xe", true), Err(PathError::NotAbsolute));
    }

    #[test]
    fn test_positions_count_utf16_units() {
        // U+00E9 is one unit, so the NUL after it is at 2; the emoji before "//" is two.
        assert_eq!(
            validate_path("/é\0".as_bytes(), false),
            Err(PathError::NullCharacter(2))
        );
        // Invalid UTF-8 after a valid prefix that has its own defect: the earlier one wins.
        assert_eq!(
            validate_path(b"/a//\xff", false),
            Err(PathError::EmptyNodeName(3))
        );
    }

    #[test]
    fn test_error_stays_small() {
        // Every parser returns `Result<_, crate::Error>`: carrying a PathError must not make
        // that error larger than a position and a tag.
        assert!(core::mem::size_of::<crate::Error>() <= 4);
    }

    #[test]
    fn test_with_path() {
        assert_eq!(
            PathError::NotAbsolute.with_path("xe").to_string(),
            "Path must start with / character"
        );
        assert_eq!(
            PathError::Relative(3).with_path("/a/.").to_string(),
            "Invalid path string \"/a/.\" caused by relative paths not allowed @3"
        );
    }
}
