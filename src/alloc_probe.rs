//! Test builds only: a global allocator that can report the largest single
//! allocation a piece of code made on the calling thread, so the decoders'
//! property tests can check that no input makes them allocate beyond a bound
//! (a length field read off the wire must never size a buffer on its own).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, watched while a probe is armed on the thread.
pub struct Probe;

fn note(size: usize) {
    // `try_with`: the thread's locals may already be gone while it exits.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is passed to `System` unchanged; the probe only reads the
// requested size and updates const-initialised thread locals, which neither
// allocate nor run destructors.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is the one `System` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `alloc`; `ptr` and `layout` come from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Probe = Probe;

/// Run `f` and return its result with the size of the largest single
/// allocation it made on this thread.
pub fn largest_alloc<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, LARGEST.with(Cell::get))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_the_largest_allocation() {
        let (v, big) = largest_alloc(|| vec![0u8; 100_000]);
        assert_eq!(v.len(), 100_000);
        assert!(big >= 100_000);
        let ((), small) = largest_alloc(|| ());
        assert_eq!(small, 0);
    }
}
