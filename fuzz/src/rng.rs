//! A deterministic stand-in for the CSPRNG a [`HealthNode`](sinew_proto::health::HealthNode)
//! draws its nonces from, so that a fuzz input replays exactly.

use core::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};

/// SplitMix64: tiny, full-period, and good enough that two nonces never collide by accident.
///
/// Not cryptographic; it only claims to be (`TryCryptoRng`) because the node insists on a
/// `CryptoRng`, and in a fuzz run predictability is the point.
#[derive(Clone, Debug)]
pub struct FuzzRng {
    state: u64,
}

impl FuzzRng {
    /// A generator whose whole output is decided by `seed`.
    pub fn new(seed: u64) -> FuzzRng {
        FuzzRng { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl TryRng for FuzzRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

impl TryCryptoRng for FuzzRng {}
