//! Argon2 working memory reused between hashes.
//!
//! Every Argon2id verification needs `m` KiB of working memory (19 MiB by
//! default). Allocating it per hash made the allocator hand it back to the
//! kernel and fault it in again on most sign-ins in the server: page faults,
//! zeroing and unmapping took a fifth of the hashing threads' CPU
//! (bench/README.md, session 4). [`BlockPool`] keeps the buffers of the
//! hashes that ran, at most one per hashing permit, so the steady state
//! allocates nothing. A buffer is wiped as soon as its hash ends: the working
//! memory of a finished hash would let anyone who can read the process's
//! memory test guesses of that password far more cheaply than Argon2 allows.

use std::sync::Mutex;

use argon2::{Argon2, Block};
use zeroize::Zeroize as _;

/// Spare Argon2 buffers: at most `keep` of them, each exactly `max_blocks`
/// blocks (the configured memory cost). A smaller stored cost borrows a full
/// buffer; a larger one gets a buffer of its own that is freed after use, so a
/// planted hash cannot make the pool hold more than `keep` × the configured
/// memory, and imported hashes with other costs cannot crowd out the usual
/// size. Every buffer is wiped when its hash ends, kept or not.
pub(super) struct BlockPool {
    spare: Mutex<Vec<Vec<Block>>>,
    keep: usize,
    max_blocks: usize,
}

impl BlockPool {
    /// A pool keeping up to `keep` buffers of exactly `max_blocks` blocks.
    pub(super) fn new(keep: usize, max_blocks: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            keep,
            max_blocks,
        }
    }

    /// Runs Argon2 (`argon2`'s algorithm, version and parameters) into `out`
    /// with a buffer from the pool. Argon2 writes every block before it reads
    /// it, so a reused buffer gives the same output as a fresh one.
    pub(super) fn hash_into(
        &self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let mut buffer = self.take(argon2.params().block_count());
        let result = argon2.hash_password_into_with_memory(password, salt, out, &mut buffer[..]);
        self.give(buffer);
        result
    }

    fn take(&self, blocks: usize) -> Vec<Block> {
        if blocks > self.max_blocks {
            return vec![Block::default(); blocks];
        }
        let reused = self
            .spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        reused.unwrap_or_else(|| vec![Block::default(); self.max_blocks])
    }

    fn give(&self, mut buffer: Vec<Block>) {
        if buffer.len() == self.max_blocks {
            // A plain fill (one memset): the buffer goes on living in the
            // pool, so the writes cannot be optimised away.
            buffer.fill(Block::default());
            let mut spare = self
                .spare
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if spare.len() < self.keep {
                spare.push(buffer);
                return;
            }
        }
        buffer.iter_mut().for_each(Block::zeroize);
    }

    /// How many buffers are waiting for reuse (for tests).
    #[cfg(test)]
    pub(super) fn spare(&self) -> usize {
        self.spare.lock().map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use argon2::{Algorithm, Params, Version};

    use super::*;

    fn argon2(m: u32) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(m, 2, 1, Some(32)).unwrap(),
        )
    }

    #[test]
    fn a_reused_buffer_gives_the_fresh_buffer_output() {
        let pool = BlockPool::new(1, 64);
        let a = argon2(64);
        let mut fresh = [0u8; 32];
        a.hash_password_into(b"password", b"somesaltsomesalt", &mut fresh)
            .unwrap();
        // Dirty the pooled buffer with another password first.
        let mut other = [0u8; 32];
        pool.hash_into(&a, b"another one", b"othersaltothersa", &mut other)
            .unwrap();
        assert_eq!(pool.spare(), 1);
        let mut reused = [0u8; 32];
        pool.hash_into(&a, b"password", b"somesaltsomesalt", &mut reused)
            .unwrap();
        assert_eq!(fresh, reused);
        assert_ne!(fresh, other);
    }

    #[test]
    fn the_pool_keeps_at_most_keep_buffers_of_the_configured_size() {
        let pool = BlockPool::new(2, 64);
        let (a, b, c) = (pool.take(64), pool.take(64), pool.take(64));
        pool.give(a);
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.spare(), 2);
        // A larger cost (a stored hash with more memory) is not kept.
        let big = pool.take(128);
        assert_eq!(big.len(), 128);
        pool.give(big);
        assert_eq!(pool.spare(), 2);
        // A smaller cost borrows a full buffer, which goes back as one.
        let small = pool.take(32);
        assert_eq!(small.len(), 64);
        assert_eq!(pool.spare(), 1);
        pool.give(small);
        assert_eq!(pool.spare(), 2);
    }

    #[test]
    fn a_buffer_is_wiped_when_its_hash_ends() {
        let pool = BlockPool::new(1, 64);
        let mut out = [0u8; 32];
        pool.hash_into(&argon2(64), b"password", b"somesaltsomesalt", &mut out)
            .unwrap();
        let kept = pool.take(64);
        assert!(kept
            .iter()
            .all(|b| b.as_ref().iter().all(|word| *word == 0)));
    }
}
