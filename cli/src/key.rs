//! Keys for sealed datagrams: `sinew keygen`, and the `--key-file` every UDP subcommand takes.
//!
//! A key file holds one key per line, 64 hex digits (32 bytes); `#` starts a comment and blank
//! lines are skipped. The first key is the primary (it seals); every key opens. Rotation on a
//! running network is done by restarting nodes with: `B` added below `A` everywhere, then `B`
//! moved first everywhere, then `A` removed everywhere.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use sinew_proto::seal::{self, KEY_LEN, Key, Keyring};
use sinew_transport_std::NonceRng;

use crate::error::Failure;

/// The `--key-file` option.
#[derive(Debug, Clone, Default, Args)]
pub struct KeyArgs {
    /// Seal every datagram with the first key of this file and accept only datagrams sealed
    /// with one of its keys (one key per line, 64 hex digits; see `sinew keygen`).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The keyring the option names: empty (unkeyed) without `--key-file`.
    ///
    /// # Errors
    /// The file cannot be read, or a line is not a key.
    pub fn keyring(&self) -> Result<Keyring, Failure> {
        match &self.key_file {
            None => Ok(Keyring::new()),
            Some(path) => load(path),
        }
    }
}

/// Reads a key file into a keyring (the first key primary).
///
/// # Errors
/// The file cannot be read; a line is not 64 hex digits; no key; more keys than a keyring
/// holds.
pub fn load(path: &Path) -> Result<Keyring, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path.display(), &e))?;
    parse(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// Parses a key file's text.
///
/// # Errors
/// What is wrong, with the line number.
pub fn parse(text: &str) -> Result<Keyring, String> {
    let mut ring = Keyring::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bytes = hex::decode(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!("line {}: a key is {KEY_LEN} bytes, not {}", n + 1, b.len())
        })?;
        ring.install(Key::from_bytes(bytes))
            .map_err(|e| format!("line {}: {e}", n + 1))?;
    }
    if ring.is_empty() {
        return Err("no key in the file".into());
    }
    Ok(ring)
}

/// Options of `sinew keygen`.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {}

/// Prints a fresh key from the operating system's CSPRNG: a line for a key file.
///
/// # Errors
/// `out` failing.
pub fn run_keygen(_args: &KeygenArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let key = Key::random(&mut NonceRng::default());
    let mut line = String::with_capacity(2 * KEY_LEN);
    for b in key.as_bytes() {
        let _ = write!(line, "{b:02x}");
    }
    writeln!(out, "{line}")?;
    Ok(0)
}

/// One line of a keyed node's seal counters (nothing for an unkeyed node that saw nothing
/// sealed).
pub fn seal_counters(stats: &seal::Stats, keyed: bool) -> Option<String> {
    if !keyed && stats.sealed_no_key == 0 {
        return None;
    }
    Some(format!(
        "seal: sealed {}, opened {}; dropped: unsealed {}, unknown key {}, bad tag {}, \
         replayed {}, too old {}, truncated {}, malformed {}, replay table full {}, \
         sealed without a key {}",
        stats.sealed,
        stats.opened,
        stats.unsealed,
        stats.unknown_key,
        stats.bad_tag,
        stats.replayed,
        stats.too_old,
        stats.truncated,
        stats.malformed,
        stats.replay_table_full,
        stats.sealed_no_key
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files() {
        let a = "aa".repeat(32);
        let b = "bb".repeat(32);
        let ring = parse(&format!("# cluster key\n{b}\n\n{a}  # old\n")).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert_eq!(ring.primary(), Some(&Key::from_bytes([0xbb; 32])));
        assert!(parse("").unwrap_err().contains("no key"));
        assert!(parse("abcd").unwrap_err().contains("line 1"));
        assert!(parse("zz").is_err());
    }

    #[test]
    fn keygen_prints_a_key_a_file_takes() {
        let mut out = Vec::new();
        run_keygen(&KeygenArgs {}, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert_eq!(parse(&text).unwrap().keys().len(), 1);
    }
}
