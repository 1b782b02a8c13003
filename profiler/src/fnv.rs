//! 64-bit FNV-1a over bytes, eight at a time where it can: the checksum of
//! the files bpfprof keeps between runs and the digest of what an unwind
//! table is made from. Enough to tell a damaged file from a whole one and
//! binaries apart; no cryptographic hash.

use profiler_common::{FNV_OFFSET, FNV_PRIME};

pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(FNV_OFFSET)
    }
}

impl Fnv {
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            self.0 = (self.0 ^ word).wrapping_mul(FNV_PRIME);
        }
        for &byte in words.remainder() {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }
}

/// The hash of `bytes`.
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    let mut hash = Fnv::default();
    hash.add(bytes);
    hash.0
}
