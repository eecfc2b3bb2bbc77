//! A warm scrape allocates nothing: the buffer is the caller's, and the encoder
//! writes into it without building any intermediate string.
//!
//! This file has its own test binary, so its counting allocator sees only itself.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the allocations of each thread while its `COUNTING` is set (per thread,
/// so that tests running in parallel do not count each other's).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; counting
// touches only const-initialised thread-locals (which never allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// A second scrape into the same buffer, in every format, allocates nothing and
/// writes the same bytes.
fn assert_warm_scrapes_allocate_nothing(registry: &promlite::Registry) {
    for format in [
        promlite::Format::Text,
        promlite::Format::OpenMetrics,
        promlite::Format::Protobuf,
    ] {
        let mut buf = Vec::new();
        promlite::encode(registry, format, &mut buf); // grows the buffer once
        let first = buf.clone();
        let n = allocations_during(|| {
            buf.clear();
            promlite::encode(registry, format, &mut buf);
        });
        assert_eq!(n, 0, "{format:?}: {n} allocations in a warm scrape");
        assert_eq!(buf, first);
    }
}

#[test]
fn a_warm_scrape_allocates_nothing() {
    let registry = common::hostile_registry();
    assert_warm_scrapes_allocate_nothing(&registry);
}

#[test]
fn a_warm_scrape_of_native_histograms_allocates_nothing() {
    let registry = promlite::Registry::new();
    let config = promlite::NativeConfig {
        classic_buckets: vec![0.01, 0.1, 1.0],
        ..promlite::NativeConfig::default()
    };
    let family = registry
        .native_histogram_family("native_seconds", "", &["path"], &config)
        .unwrap();
    for (i, path) in ["/", "/a", "/b"].iter().enumerate() {
        let h = family.with_labels(&[path]).unwrap();
        for k in 0..200 {
            h.observe(1e-4 * 1.07f64.powi(k + i as i32));
        }
        h.observe(-0.5);
    }
    assert_warm_scrapes_allocate_nothing(&registry);
    // And observing, once this thread has its stripe, allocates nothing either.
    let h = family.with_labels(&["/"]).unwrap();
    let n = allocations_during(|| {
        for k in 0..1000 {
            h.observe(1e-4 * 1.07f64.powi(k % 300));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn a_warm_scrape_with_exemplars_allocates_nothing() {
    let registry = promlite::Registry::new();
    let c = registry.counter("orders_total", "").unwrap();
    c.inc_by_with_exemplar(1.0, &[("trace_id", "a\"b")])
        .unwrap();
    let h = registry.histogram("wait_seconds", "", &[0.1, 1.0]).unwrap();
    h.observe_with_exemplar(0.5, &[("trace_id", "c")]).unwrap();
    for format in [promlite::Format::OpenMetrics, promlite::Format::Protobuf] {
        let mut buf = Vec::new();
        promlite::encode(&registry, format, &mut buf);
        let n = allocations_during(|| {
            buf.clear();
            promlite::encode(&registry, format, &mut buf);
        });
        assert_eq!(n, 0, "{format:?}: {n} allocations in a warm scrape");
    }
}

#[test]
fn the_counting_allocator_does_count() {
    // A cold scrape grows the buffer: the check above is able to fail.
    let registry = common::seed_registry();
    let n = allocations_during(|| {
        let mut buf = Vec::new();
        promlite::encode_text(&registry, &mut buf);
    });
    assert!(n > 0);
}

#[test]
fn the_hot_path_allocates_nothing() {
    let registry = common::seed_registry();
    let family = registry
        .counter_family("hot_total", "", &["a", "b"])
        .unwrap();
    let histogram = registry.histogram("hot_seconds", "", &[1.0]).unwrap();
    family.with_labels(&["x", "y"]).unwrap();
    histogram.observe(0.1); // claims this thread's stripe slot
    let n = allocations_during(|| {
        for _ in 0..1000 {
            family.with_labels(&["x", "y"]).unwrap().inc();
            histogram.observe(0.5);
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn a_warm_gzip_allocates_nothing() {
    let registry = common::hostile_registry();
    let mut text = Vec::new();
    promlite::encode_text(&registry, &mut text);
    let big = text.repeat(200); // several blocks, and a stored-size check each
    let mut gz = promlite::Gzip::new();
    let mut out = Vec::new();
    for input in [&text, &big] {
        out.clear();
        gz.compress(input, &mut out); // grows the tables and the buffer once
        let first = out.clone();
        let n = allocations_during(|| {
            out.clear();
            gz.compress(input, &mut out);
        });
        assert_eq!(n, 0, "{n} allocations in a warm compression");
        assert!(out == first, "the same bytes again");
    }
}
