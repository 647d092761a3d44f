//! The Argon2 memory of one hashing thread: 19 MiB with the default
//! parameters, kept between hashes (allocating and touching it costs a few
//! milliseconds per hash) and given back to the operating system once the
//! thread has been idle for [`RELEASE_WHEN_IDLE_FOR`].
//!
//! Giving it back is the allocator's part, and glibc's malloc needs care: a
//! block of 19 MiB is served by a mapping of its own, but freeing it raises
//! the allocator's mmap threshold to 19 MiB ("dynamic threshold"), so the next
//! block — and every mid-sized buffer after it — comes from the heap, whose
//! freed memory stays with the process. Allocations past
//! [`OWN_MAPPING_BYTES`] (glibc's largest dynamic threshold, 32 MiB on 64-bit)
//! are always mapped on their own and freeing them does not move the
//! threshold, so the memory is reserved with that capacity and only the
//! blocks a hash uses are touched: the rest of the reservation is address
//! space, never resident.

use std::time::Duration;

use argon2::Block;

/// How long a hashing thread keeps its memory without work.
pub const RELEASE_WHEN_IDLE_FOR: Duration = Duration::from_secs(2);

/// Past glibc's `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB with 64-bit pointers).
const OWN_MAPPING_BYTES: usize = 33 << 20;

/// One thread's Argon2 blocks, allocated on first use.
#[derive(Default)]
pub struct ArgonMemory {
    blocks: Vec<Block>,
}

impl ArgonMemory {
    /// The first `count` blocks, allocating (and zeroing) them if fewer are held.
    pub fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            // Replace rather than grow: growing would copy the old blocks into
            // a reservation that may be smaller than `OWN_MAPPING_BYTES`.
            self.blocks = Vec::new();
            let reserve = count.max(OWN_MAPPING_BYTES / size_of::<Block>());
            let mut blocks = Vec::with_capacity(reserve);
            blocks.resize(count, Block::default());
            self.blocks = blocks;
        }
        &mut self.blocks[..count]
    }

    /// Bytes of blocks held (and resident: each one has been written).
    pub fn held_bytes(&self) -> usize {
        self.blocks.len() * size_of::<Block>()
    }

    /// Gives the blocks back; the next hash allocates them again.
    pub fn release(&mut self) {
        self.blocks = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_kept_until_released_and_reserved_past_the_threshold() {
        let mut memory = ArgonMemory::default();
        assert_eq!(memory.held_bytes(), 0);
        let count = argon2::Params::default().block_count();
        assert_eq!(memory.blocks(count).len(), count);
        assert_eq!(memory.held_bytes(), 19 << 20);
        assert!(memory.blocks.capacity() * size_of::<Block>() >= OWN_MAPPING_BYTES);
        let first = memory.blocks.as_ptr();
        assert_eq!(
            memory.blocks(count).as_ptr(),
            first,
            "reused, not reallocated"
        );
        assert_eq!(memory.blocks(10).len(), 10, "a smaller hash uses a prefix");
        assert_eq!(memory.held_bytes(), 19 << 20);
        memory.release();
        assert_eq!(memory.held_bytes(), 0);
        assert_eq!(memory.blocks.capacity(), 0);
    }

    #[test]
    fn a_larger_hash_replaces_the_blocks_with_enough_for_it() {
        let mut memory = ArgonMemory::default();
        memory.blocks(8);
        let larger = OWN_MAPPING_BYTES / size_of::<Block>() + 8;
        assert_eq!(memory.blocks(larger).len(), larger);
        assert_eq!(memory.held_bytes(), larger * size_of::<Block>());
    }
}
