//! Giving freed heap back to the operating system.
//!
//! When documents unload and connections close, their memory is freed, but glibc's
//! allocator keeps freed pages mapped for reuse: after a busy hour the process stays
//! at its peak size however little it still holds (measured: 10,000 documents
//! loaded and unloaded left resident memory 17× its start value). The sweeper asks
//! for those pages to be returned once the number of loaded documents has dropped
//! to half of its high-water mark, so an operator sees memory follow load.
//!
//! `malloc_trim(0)` walks every arena and hands back whole free pages
//! (`MADV_DONTNEED`); it runs on a blocking thread because it takes milliseconds on
//! a large heap. On allocators other than glibc's this is a no-op.

/// Don't trim for fewer unloads than this: a trim costs more than it returns.
pub const MIN_UNLOADS: usize = 256;

/// Decides when the loaded-document count has fallen far enough to trim.
#[derive(Debug, Default)]
pub struct TrimPolicy {
    high_water: usize,
}

impl TrimPolicy {
    /// Record the number of loaded documents; true when a trim is due: at half the
    /// high-water mark (and at least [`MIN_UNLOADS`] below it), or when the last
    /// document unloaded. The mark then restarts from the current count.
    pub fn observe(&mut self, loaded: usize) -> bool {
        self.high_water = self.high_water.max(loaded);
        let halved = loaded <= self.high_water / 2 && self.high_water - loaded >= MIN_UNLOADS;
        // The last documents unloading leave what they held scattered between
        // pages the earlier trims kept: one more trim once none is left.
        let emptied = loaded == 0 && self.high_water > 0;
        let due = halved || emptied;
        if due {
            self.high_water = loaded;
        }
        due
    }
}

/// Return free heap pages to the operating system (glibc only).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only touches the allocator's own free lists, under its
    // own locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_at_half_the_high_water_mark_and_not_for_small_drops() {
        let mut p = TrimPolicy::default();
        assert!(!p.observe(1000));
        assert!(!p.observe(501));
        assert!(p.observe(500), "half of 1000");
        assert!(!p.observe(400), "the mark restarted at 500");
        assert!(
            !p.observe(250),
            "half, but fewer than MIN_UNLOADS below the mark"
        );
        assert!(p.observe(240));
        // Fewer than MIN_UNLOADS unloads trigger one only when none is left.
        let mut small = TrimPolicy::default();
        assert!(!small.observe(200));
        assert!(!small.observe(20));
        assert!(small.observe(0));
        assert!(!small.observe(0), "once");
        let mut big = TrimPolicy::default();
        assert!(!big.observe(300));
        assert!(big.observe(10));
    }
}
