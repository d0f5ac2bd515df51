//! The allocator's settings, so that memory freed under load goes back to the OS.
//!
//! glibc's malloc raises its mmap threshold every time a large block it served by `mmap` is
//! freed (up to 32 MiB), and its trim threshold with it. After a few of sled's and hyper's
//! large buffers, large blocks come from the heap and the pages they leave stay resident:
//! at 64 clients the daemon's peak RSS was 160–200 MiB. With both thresholds fixed it was
//! 122–125 MiB at the same throughput (BENCHMARKS.md, "Memory").
//!
//! With the mmap threshold fixed, sled's log buffers were mapped and unmapped ~50 times a
//! second under load; [`Allocator`] keeps a few of them for reuse instead.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

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

/// The size and alignment of the I/O buffer sled 0.34 allocates for each log segment
/// (`AlignedBuf::new(segment_size)`; sled's default segment size, which paygate keeps).
const SLED_SEGMENT_BYTES: usize = 512 * 1024;
const SLED_SEGMENT_ALIGN: usize = 8192;
/// How many freed segment buffers are kept: sled has one or two in use at a time.
const SPARE_SEGMENTS: usize = 4;

/// The daemon's global allocator: the system's, except that freed sled segment buffers are
/// kept (at most [`SPARE_SEGMENTS`], 2 MiB) and handed out again. sled allocates a fresh
/// 512 KiB buffer each time a log segment fills, ~50 times a second at 64 clients; from
/// glibc that is a new mapping each time, so every page of it faulted in and was zeroed, and
/// each unmapping interrupted the other core to flush its TLB. Reusing them made durable
/// payments ~10 % cheaper (BENCHMARKS.md, eighth run). Raising the mmap threshold instead
/// did as much but let peak RSS grow to ~240 MiB.
pub struct Allocator;

static SPARE: [AtomicPtr<u8>; SPARE_SEGMENTS] =
    [const { AtomicPtr::new(null_mut()) }; SPARE_SEGMENTS];

fn is_segment(layout: Layout) -> bool {
    layout.size() == SLED_SEGMENT_BYTES && layout.align() == SLED_SEGMENT_ALIGN
}

// SAFETY: every block comes from `System` with the layout it is later freed with: a spare
// is a block of exactly the segment layout, taken by one caller only (`swap`), and handed
// out only for that same layout.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_segment(layout) {
            for slot in &SPARE {
                let spare = slot.swap(null_mut(), Ordering::Acquire);
                if !spare.is_null() {
                    return spare;
                }
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_segment(layout) {
            for slot in &SPARE {
                if slot
                    .compare_exchange(null_mut(), ptr, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
            }
        }
        // SAFETY: `ptr` was allocated by `System` with `layout` (see above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_segment(layout) {
            // SAFETY: the caller's contract; a spare's bytes are cleared before use.
            let ptr = unsafe { self.alloc(layout) };
            if !ptr.is_null() {
                unsafe { ptr.write_bytes(0, layout.size()) };
            }
            return ptr;
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract (`new_size` valid for `layout.align()`).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_segment(layout) && !is_segment(new_layout) {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: as `GlobalAlloc::realloc`'s default: a new block, the bytes copied, the
        // old block freed.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_sled_segment_buffer_is_handed_out_again_and_others_are_not_kept() {
        let segment = Layout::from_size_align(SLED_SEGMENT_BYTES, SLED_SEGMENT_ALIGN).unwrap();
        let other = Layout::from_size_align(SLED_SEGMENT_BYTES, 8).unwrap();
        // SAFETY: each block is freed once, with the layout it was allocated with.
        unsafe {
            let first = Allocator.alloc(segment);
            assert!(!first.is_null());
            assert_eq!(first as usize % SLED_SEGMENT_ALIGN, 0);
            first.write_bytes(7, SLED_SEGMENT_BYTES);
            Allocator.dealloc(first, segment);
            let again = Allocator.alloc(segment);
            assert_eq!(again, first, "the spare is reused");
            let zeroed = {
                Allocator.dealloc(again, segment);
                Allocator.alloc_zeroed(segment)
            };
            assert_eq!(zeroed, first);
            assert!(
                std::slice::from_raw_parts(zeroed, SLED_SEGMENT_BYTES)
                    .iter()
                    .all(|&b| b == 0)
            );
            // More spares than slots: the rest go back to the system.
            let many: Vec<_> = (0..SPARE_SEGMENTS + 2)
                .map(|_| Allocator.alloc(segment))
                .collect();
            assert!(many.iter().all(|p| !p.is_null()));
            for &p in &many {
                Allocator.dealloc(p, segment);
            }
            assert!(
                SPARE
                    .iter()
                    .all(|slot| !slot.load(Ordering::Relaxed).is_null())
            );
            Allocator.dealloc(zeroed, segment);
            // A block of another layout is never a spare.
            let plain = Allocator.alloc(other);
            let grown = Allocator.realloc(plain, other, 2 * SLED_SEGMENT_BYTES);
            assert!(!grown.is_null());
            Allocator.dealloc(
                grown,
                Layout::from_size_align(2 * SLED_SEGMENT_BYTES, 8).unwrap(),
            );
        }
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        assert!(super::keep_rss_low());
    }
}
