//! `GET /native`: a buffer from the system allocator per request, the way a C library linked
//! into a Rust service allocates. Leaky (`--leak native`): never freed, so RSS grows while
//! jemalloc's own statistics (the runtime heap) stay flat. Fixed: freed before the answer.
//!
//! The target's own `malloc` symbol is jemalloc's (unprefixed), so the C library's `malloc` is
//! looked up with `dlsym(RTLD_NEXT)`: the next definition after this executable, which is an
//! interposer's when one is preloaded (heaptrack's `libheaptrack_preload.so`), else glibc's.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

type MallocFn = unsafe extern "C" fn(usize) -> *mut libc::c_void;
type FreeFn = unsafe extern "C" fn(*mut libc::c_void);

/// Buffers from the system allocator that were never freed.
pub static LEAKED_BUFFERS: AtomicI64 = AtomicI64::new(0);

/// The system allocator's `malloc` and `free`, past this executable's own (jemalloc's).
fn system_allocator() -> Option<(MallocFn, FreeFn)> {
    static FNS: OnceLock<Option<(usize, usize)>> = OnceLock::new();
    let (m, f) = (*FNS.get_or_init(|| {
        // SAFETY: dlsym with RTLD_NEXT and NUL-terminated names only looks symbols up.
        let (m, f) = unsafe {
            (
                libc::dlsym(libc::RTLD_NEXT, c"malloc".as_ptr()),
                libc::dlsym(libc::RTLD_NEXT, c"free".as_ptr()),
            )
        };
        (!m.is_null() && !f.is_null()).then_some((m as usize, f as usize))
    }))?;
    // SAFETY: the addresses are the C library's `malloc` and `free`, with these signatures.
    unsafe {
        Some((
            std::mem::transmute::<usize, MallocFn>(m),
            std::mem::transmute::<usize, FreeFn>(f),
        ))
    }
}

/// Allocates `bytes` with the system allocator and writes every byte (so the pages are
/// resident); frees the buffer unless `leak`. Returns whether the allocation succeeded.
///
/// Exported under its own C name, so a native heap profiler's table names it plainly.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn leak_native_buffer(bytes: usize, leak: bool) -> bool {
    let Some((malloc, free)) = system_allocator() else {
        return false;
    };
    // SAFETY: malloc returns null or `bytes` writable bytes, all written before any use; the
    // buffer is freed at most once, by the same allocator.
    unsafe {
        let p = malloc(bytes.max(1));
        if p.is_null() {
            return false;
        }
        std::ptr::write_bytes(p.cast::<u8>(), 0xA5, bytes);
        if leak {
            LEAKED_BUFFERS.fetch_add(1, Ordering::Relaxed);
        } else {
            free(p);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaked_buffers_are_counted_and_freed_ones_are_not() {
        let before = LEAKED_BUFFERS.load(Ordering::Relaxed);
        assert!(leak_native_buffer(4096, false));
        assert_eq!(LEAKED_BUFFERS.load(Ordering::Relaxed), before);
        assert!(leak_native_buffer(64, true));
        assert_eq!(LEAKED_BUFFERS.load(Ordering::Relaxed), before + 1);
    }
}
