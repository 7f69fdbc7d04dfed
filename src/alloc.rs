//! Memory housekeeping after one-off bursts of allocation.
//!
//! A restore reads the whole persistence file and prepares every group before the store takes
//! them; what it frees afterwards stays in glibc's free lists, resident, unless the allocator is
//! asked to hand it back. (mimalloc as the global allocator was measured too, and not kept: with
//! the restore and import reworked it was no faster, and a store of a million series pushed live
//! took 6% more memory; see docs/performance.md.)

/// Hands free heap memory back to the operating system now (glibc's `malloc_trim`). Elsewhere a
/// no-op.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
