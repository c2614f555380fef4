//! Sealed datagrams: a shared-key keyring and the authenticated, encrypted wire form that
//! carries any datagram of the other protocols, and [`Keyed`], the wrapper that seals
//! everything a [`DatagramCore`](crate::datagram::DatagramCore) sends and opens everything it
//! receives.
//!
//! A sealed datagram is a version-7 datagram (the type byte's version bits are 7, see
//! [`nonce`](crate::nonce)); its body is AES-256-GCM (NIST SP 800-38D) over the inner datagram:
//!
//! ```text
//! +------+--------+-----------------+-----------+------------------+-------------+
//! | 0xE0 | key id | sender (8 bytes) | counter(4) | ciphertext (n)  | tag (16)    |
//! +------+--------+-----------------+-----------+------------------+-------------+
//!   the 14-byte header is associated data; sender ‖ counter is the 96-bit AEAD nonce
//! ```
//!
//! Every sealed datagram is [`OVERHEAD`] (30) bytes longer than the datagram it carries, so a
//! core under [`Keyed`] may send at most [`MAX_PLAINTEXT_LEN`] (478) bytes: [`Keyed`] hands
//! its inner core a buffer of exactly that length, and the cores size what they send by the
//! buffer they are given.
//!
//! A [`Keyring`] holds up to `K` keys; one, the primary, seals; all open. Rotation without
//! downtime: install the new key everywhere, make it primary everywhere, remove the old one.
//!
//! ```
//! use sinew_proto::seal::{Key, Keyring, HEADER_LEN, OVERHEAD};
//!
//! let mut ring: Keyring = Keyring::new();
//! ring.install(Key::from_bytes([7; 32]))?;
//!
//! // The inner datagram goes at HEADER_LEN; seal writes the header and the tag around it.
//! let mut buf = [0u8; 64];
//! buf[HEADER_LEN..HEADER_LEN + 5].copy_from_slice(b"hello");
//! let len = ring.seal(0x0102_0304_0506_0708, 1, &mut buf, 5)?;
//! assert_eq!(len, 5 + OVERHEAD);
//!
//! let opened = ring.open(&mut buf[..len])?;
//! assert_eq!((opened.sender, opened.counter), (0x0102_0304_0506_0708, 1));
//! assert_eq!(opened.plaintext, b"hello");
//! # Ok::<(), sinew_proto::Error>(())
//! ```

mod keyed;
mod replay;
#[cfg(test)]
mod tests;

use core::fmt;
use core::ops::Range;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use heapless::Vec;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::datagram::MAX_DATAGRAM_LEN;
use crate::nonce::{split_type_byte, type_byte};
use crate::{Error, Result};

pub use keyed::{Config, Disposition, DropReason, Keyed, Stats};
pub use replay::{REPLAY_WINDOW, Replay, ReplayTable};

/// The version bits of a sealed datagram's type byte: the highest version, reserved for the
/// seal, so that the protocols inside keep every lower version for themselves (the DHT's lock
/// messages are version 1).
pub const VERSION: u8 = 7;
/// The kind of an AES-256-GCM sealed datagram (the only one; other kinds of version 7 are
/// refused as [`Error::UnknownType`]).
pub const KIND_AES_256_GCM: u8 = 0;
/// The type byte of a sealed datagram: `0xE0`.
pub const TYPE: u8 = type_byte(VERSION, KIND_AES_256_GCM);
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of the AEAD nonce (sender ‖ counter).
pub const AEAD_NONCE_LEN: usize = 12;
/// Length of the sealed header (type, key id, sender, counter), the associated data.
pub const HEADER_LEN: usize = field::COUNTER.end;
/// Bytes a sealed datagram adds to the one it carries: header and tag.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The shortest sealed datagram (an empty inner datagram).
pub const MIN_SEALED_LEN: usize = OVERHEAD;
/// The longest inner datagram that can be sealed within [`MAX_DATAGRAM_LEN`]: 478 bytes.
pub const MAX_PLAINTEXT_LEN: usize = MAX_DATAGRAM_LEN - OVERHEAD;

mod field {
    use super::Range;
    pub const TYPE: usize = 0;
    pub const KEY_ID: usize = 1;
    pub const SENDER: Range<usize> = 2..10;
    pub const COUNTER: Range<usize> = 10..14;
    /// The AEAD nonce is the sender and the counter, as they stand in the header.
    pub const AEAD_NONCE: Range<usize> = SENDER.start..COUNTER.end;
}

/// A 256-bit shared key.
///
/// Its `Debug` shows only its [`id`](Key::id), never the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A key with the given bytes (from a key file, or [`Key::random`]).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// A fresh key drawn from `rng`.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Key {
        let mut bytes = [0; KEY_LEN];
        rng.fill_bytes(&mut bytes);
        Key(bytes)
    }

    /// The key's bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key's one-byte id, carried in every datagram it seals so that the receiver tries
    /// the right key: the first byte of SHA-256("sinew key id" ‖ key). Two keys may share an
    /// id (1 in 256); a receiver then tries both.
    pub fn id(&self) -> u8 {
        let mut hash = Sha256::new();
        hash.update(b"sinew key id");
        hash.update(self.0);
        hash.finalize()[0]
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {:#04x})", self.id())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Key {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Key(id {=u8:#x})", self.id())
    }
}

/// A read view of a sealed datagram: its header fields, ciphertext and tag, unverified.
///
/// After [`Sealed::new_checked`] has succeeded no accessor can fail or panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Sealed<T> {
    /// Checks that `buffer` is a whole sealed datagram and wraps it.
    ///
    /// # Errors
    /// [`Error::Truncated`] below [`MIN_SEALED_LEN`], [`Error::TooLarge`] above
    /// [`MAX_DATAGRAM_LEN`], [`Error::UnsupportedVersion`] if the version bits are not
    /// [`VERSION`] (an unsealed datagram has version 0), [`Error::UnknownType`] for a kind
    /// other than [`KIND_AES_256_GCM`].
    pub fn new_checked(buffer: T) -> Result<Sealed<T>> {
        let bytes = buffer.as_ref();
        let Some(&type_byte) = bytes.first() else {
            return Err(Error::Truncated);
        };
        let (version, kind) = split_type_byte(type_byte);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        if kind != KIND_AES_256_GCM {
            return Err(Error::UnknownType(type_byte));
        }
        if bytes.len() < MIN_SEALED_LEN {
            return Err(Error::Truncated);
        }
        if bytes.len() > MAX_DATAGRAM_LEN {
            return Err(Error::TooLarge);
        }
        Ok(Sealed { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The id of the key that sealed it.
    pub fn key_id(&self) -> u8 {
        self.bytes()[field::KEY_ID]
    }

    /// The sender's 64-bit random id (fresh for every run of a sender, and whenever its
    /// counter would wrap).
    pub fn sender(&self) -> u64 {
        read_u64(&self.bytes()[field::SENDER])
    }

    /// The sender's datagram counter.
    pub fn counter(&self) -> u32 {
        read_u32(&self.bytes()[field::COUNTER])
    }

    /// The header: the associated data.
    pub fn header(&self) -> &[u8] {
        &self.bytes()[..HEADER_LEN]
    }

    /// The encrypted inner datagram.
    pub fn ciphertext(&self) -> &[u8] {
        let bytes = self.bytes();
        &bytes[HEADER_LEN..bytes.len() - TAG_LEN]
    }

    /// The authentication tag.
    pub fn tag(&self) -> &[u8] {
        let bytes = self.bytes();
        &bytes[bytes.len() - TAG_LEN..]
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(bytes);
    u64::from_be_bytes(b)
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(bytes);
    u32::from_be_bytes(b)
}

/// An opened sealed datagram: who sealed it, and the inner datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The id of the key that opened it.
    pub key_id: u8,
    /// The sender's random id.
    pub sender: u64,
    /// The sender's datagram counter.
    pub counter: u32,
    /// The inner datagram, decrypted in place.
    pub plaintext: &'a [u8],
}

/// Up to `K` shared keys: the primary seals, every one opens.
///
/// Installing into an empty keyring makes that key the primary; the primary cannot be
/// removed (make another key primary first), so a keyring that is not empty always has one.
///
/// Each key is kept with its expanded AES key schedule and GHASH key, computed once at
/// [`install`](Keyring::install). The keyring's copies of a key (its bytes, schedule and
/// GHASH key) are wiped when the key is removed or the keyring dropped; copies of [`Key`]
/// the caller kept (it is `Copy`) are the caller's to wipe.
#[derive(Clone)]
pub struct Keyring<const K: usize = 4> {
    keys: Vec<Key, K>,
    /// `ids[i]` is `keys[i].id()`, computed once (it costs a SHA-256).
    ids: Vec<u8, K>,
    /// `ciphers[i]` is `keys[i]` expanded, computed once (it costs more than a health check's
    /// seal and open together).
    ciphers: Vec<Aes256Gcm, K>,
    primary: usize,
}

impl<const K: usize> Drop for Keyring<K> {
    fn drop(&mut self) {
        // The ciphers wipe themselves when dropped after this.
        for key in self.keys.iter_mut() {
            key.0.zeroize();
        }
    }
}

impl<const K: usize> Default for Keyring<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const K: usize> fmt::Debug for Keyring<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.as_slice())
            .field("primary", &self.primary())
            .finish()
    }
}

impl<const K: usize> Keyring<K> {
    /// An empty keyring (it seals nothing and opens nothing).
    pub const fn new() -> Self {
        Keyring {
            keys: Vec::new(),
            ids: Vec::new(),
            ciphers: Vec::new(),
            primary: 0,
        }
    }

    /// A keyring whose only key, `key`, is the primary.
    pub fn with_key(key: Key) -> Self {
        let mut ring = Self::new();
        // A keyring of capacity 0 stays empty, and seals nothing.
        let _ = ring.install(key);
        ring
    }

    /// Adds `key` (accepted on receipt from now on); the first key installed becomes the
    /// primary. Installing a key already there does nothing.
    ///
    /// # Errors
    /// [`Error::Capacity`] if `K` keys are installed.
    pub fn install(&mut self, key: Key) -> Result<()> {
        if self.keys.contains(&key) {
            return Ok(());
        }
        self.keys.push(key).map_err(|_| Error::Capacity)?;
        // Same capacity as `keys`, which just took one more.
        let _ = self.ids.push(key.id());
        let _ = self.ciphers.push(Aes256Gcm::new(&key.0.into()));
        Ok(())
    }

    /// Makes the installed `key` the primary: every datagram is sealed with it from now on.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] if it is not installed.
    pub fn use_key(&mut self, key: &Key) -> Result<()> {
        let i = self.position(key)?;
        self.primary = i;
        Ok(())
    }

    /// Removes `key`: datagrams sealed with it are refused from now on.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] if it is not installed, [`Error::BadValue`] if it is the primary.
    pub fn remove(&mut self, key: &Key) -> Result<()> {
        let i = self.position(key)?;
        if i == self.primary {
            return Err(Error::BadValue);
        }
        // Wiped where they stand: `remove` moves an element out, and a move leaves the bytes
        // behind. Assigning drops the old cipher in place, which wipes its schedule and GHASH
        // key (aes-gcm's `zeroize`).
        self.keys[i].0.zeroize();
        self.ciphers[i] = Aes256Gcm::new(&[0; KEY_LEN].into());
        self.keys.remove(i);
        self.ids.remove(i);
        self.ciphers.remove(i);
        if i < self.primary {
            self.primary -= 1;
        }
        Ok(())
    }

    fn position(&self, key: &Key) -> Result<usize> {
        self.keys
            .iter()
            .position(|k| k == key)
            .ok_or(Error::UnknownKey(key.id()))
    }

    /// The primary key, `None` when the keyring is empty.
    pub fn primary(&self) -> Option<&Key> {
        self.keys.get(self.primary)
    }

    /// The installed keys, in the order they were installed.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Whether no key is installed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals the `len`-byte inner datagram that stands at `buf[HEADER_LEN..]`, in place, with
    /// the primary key, as datagram `counter` of `sender`: writes the header in front of it
    /// and the tag behind it, and returns the sealed length, `len + OVERHEAD`.
    ///
    /// A (key, sender, counter) triple must never seal twice: [`Keyed`] draws a random
    /// sender for every run and whenever its counter would wrap.
    ///
    /// # Errors
    /// [`Error::NoKey`] if the keyring is empty, [`Error::TooLarge`] if `len` is above
    /// [`MAX_PLAINTEXT_LEN`], [`Error::BufferTooSmall`] if `buf` is shorter than
    /// `len + OVERHEAD`.
    pub fn seal(&self, sender: u64, counter: u32, buf: &mut [u8], len: usize) -> Result<usize> {
        let (Some(cipher), Some(&key_id)) =
            (self.ciphers.get(self.primary), self.ids.get(self.primary))
        else {
            return Err(Error::NoKey);
        };
        if len > MAX_PLAINTEXT_LEN {
            return Err(Error::TooLarge);
        }
        let total = len + OVERHEAD;
        let Some(buf) = buf.get_mut(..total) else {
            return Err(Error::BufferTooSmall);
        };
        let (header, rest) = buf.split_at_mut(HEADER_LEN);
        header[field::TYPE] = TYPE;
        header[field::KEY_ID] = key_id;
        header[field::SENDER].copy_from_slice(&sender.to_be_bytes());
        header[field::COUNTER].copy_from_slice(&counter.to_be_bytes());
        let nonce = aead_nonce(header);
        let (body, tag) = rest.split_at_mut(len);
        let computed = cipher
            .encrypt_inout_detached(&nonce.into(), header, body.into())
            // Only for inputs beyond 2^36 bytes; a datagram is never that long.
            .map_err(|_| Error::TooLarge)?;
        tag.copy_from_slice(&computed);
        Ok(total)
    }

    /// Opens the sealed datagram `datagram` in place: checks its header, finds the keys with
    /// its key id, and decrypts with the one whose tag matches. The inner datagram is then at
    /// `datagram[HEADER_LEN..len - TAG_LEN]`; [`Opened::plaintext`] borrows it.
    ///
    /// On any error the bytes of `datagram` may have been overwritten.
    ///
    /// # Errors
    /// Those of [`Sealed::new_checked`]; [`Error::UnknownKey`] if no installed key has its
    /// key id; [`Error::BadTag`] if the tag matches under none of them (wrong key, or altered
    /// bytes).
    pub fn open<'a>(&self, datagram: &'a mut [u8]) -> Result<Opened<'a>> {
        let sealed = Sealed::new_checked(&*datagram)?;
        let (key_id, sender, counter) = (sealed.key_id(), sealed.sender(), sealed.counter());
        let len = datagram.len();
        let (header, rest) = datagram.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(len - OVERHEAD);
        let nonce = aead_nonce(header);
        let mut tag_bytes = [0; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let mut tried = false;
        // A failed attempt leaves the body as it was (the tag is checked before anything is
        // decrypted), so the next key with the same id sees the ciphertext again.
        let candidates = self.ciphers.iter().zip(&self.ids);
        for (cipher, _) in candidates.filter(|&(_, &id)| id == key_id) {
            tried = true;
            if cipher
                .decrypt_inout_detached(
                    &nonce.into(),
                    header,
                    (&mut *body).into(),
                    &tag_bytes.into(),
                )
                .is_ok()
            {
                return Ok(Opened {
                    key_id,
                    sender,
                    counter,
                    plaintext: body,
                });
            }
        }
        Err(if tried {
            Error::BadTag
        } else {
            Error::UnknownKey(key_id)
        })
    }
}

fn aead_nonce(header: &[u8]) -> [u8; AEAD_NONCE_LEN] {
    let mut nonce = [0; AEAD_NONCE_LEN];
    nonce.copy_from_slice(&header[field::AEAD_NONCE]);
    nonce
}
