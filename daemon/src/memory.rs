//! The allocator's settings, so that memory freed under load goes back to the OS.
//!
//! glibc's malloc raises its mmap threshold every time a large block it served by `mmap` is
//! freed (up to 32 MiB), and its trim threshold with it. After a few of sled's and hyper's
//! large buffers, large blocks come from the heap and the pages they leave stay resident:
//! at 64 clients the daemon's peak RSS was 160–200 MiB. With both thresholds fixed it was
//! 122–125 MiB at the same throughput (BENCHMARKS.md, "Memory").

/// glibc's default mmap threshold: blocks this large or larger get their own mapping.
const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;
/// Free memory at the top of the heap beyond this is returned to the OS.
const TRIM_THRESHOLD_BYTES: i32 = 1024 * 1024;

/// Fixes glibc's thresholds (elsewhere: nothing to do). Returns whether they were set.
pub fn keep_rss_low() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes the allocator's parameters; it is thread-safe and
        // takes plain integers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        assert!(super::keep_rss_low());
    }
}
