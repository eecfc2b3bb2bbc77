//! The family API, tried with counters.
use super::*;
use crate::metrics::counter::Counter;
use crate::metrics::key::LabelNames;

fn counters(labels: &[&str]) -> Family<Counter> {
    Family::from_core(FamilyCore::new(
        "test_total".into(),
        "help".into(),
        LabelNames::new(labels),
        (),
    ))
}

#[test]
fn values_that_run_together_the_same_are_different_series() {
    let f = counters(&["a", "b"]);
    f.with_labels(&["ab", "c"]).unwrap().inc();
    f.with_labels(&["a", "bc"]).unwrap().inc_by(5.0).unwrap();
    f.with_labels(&["abc", ""]).unwrap().inc_by(7.0).unwrap();
    assert_eq!(f.len(), 3);
    assert_eq!(f.with_labels(&["ab", "c"]).unwrap().get(), 1.0);
    assert_eq!(f.with_labels(&["a", "bc"]).unwrap().get(), 5.0);
    assert_eq!(f.with_labels(&["abc", ""]).unwrap().get(), 7.0);
    assert_eq!(f.with_labels(&["", "abc"]).unwrap().get(), 0.0);
}

#[test]
fn same_values_give_the_same_series() {
    let f = counters(&["x"]);
    let a = f.with_labels(&["v"]).unwrap();
    let b = f.with_labels(&["v"]).unwrap();
    a.inc();
    b.inc();
    assert_eq!(f.len(), 1);
    assert_eq!(a.get(), 2.0);
}

#[test]
fn wrong_label_count_is_an_error() {
    let f = counters(&["a", "b"]);
    let err = f.with_labels(&["only one"]).unwrap_err();
    assert_eq!(
        err,
        Error::LabelCount {
            metric: "test_total".into(),
            expected: 2,
            got: 1
        }
    );
    assert!(f.with_labels(&["1", "2", "3"]).is_err());
    assert!(!f.remove(&["1"]));
    assert!(f.is_empty());
}

#[test]
fn the_cardinality_limit_refuses_new_series_only() {
    let f = counters(&["id"]);
    assert_eq!(f.series_limit(), DEFAULT_SERIES_LIMIT);
    f.set_series_limit(3);
    for id in ["1", "2", "3"] {
        f.with_labels(&[id]).unwrap().inc();
    }
    assert_eq!(
        f.with_labels(&["4"]).unwrap_err(),
        Error::CardinalityLimit {
            metric: "test_total".into(),
            limit: 3
        }
    );
    // Existing series are still served, and removing one makes room.
    f.with_labels(&["2"]).unwrap().inc();
    assert!(f.remove(&["1"]));
    f.with_labels(&["4"]).unwrap().inc();
    assert_eq!(f.len(), 3);
}

#[test]
fn the_default_limit_is_ten_thousand() {
    let f = counters(&["id"]);
    for i in 0..DEFAULT_SERIES_LIMIT {
        f.with_labels(&[&i.to_string()]).unwrap();
    }
    assert!(matches!(
        f.with_labels(&["one more"]),
        Err(Error::CardinalityLimit { limit: 10_000, .. })
    ));
    assert_eq!(f.len(), DEFAULT_SERIES_LIMIT);
}

#[test]
fn removal_keeps_every_other_series_findable_and_in_order() {
    let f = counters(&["id"]);
    let ids: Vec<String> = (0..500).map(|i| format!("series-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        f.with_labels(&[id]).unwrap().inc_by(i as f64).unwrap();
    }
    for id in ids.iter().step_by(3) {
        assert!(f.remove(&[id]));
        assert!(!f.remove(&[id]));
    }
    let mut seen = Vec::new();
    f.core.for_each(|c| seen.push(c.get() as usize));
    let expected: Vec<usize> = (0..500).filter(|i| i % 3 != 0).collect();
    assert_eq!(seen, expected, "creation order survives removals");
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        assert_eq!(f.with_labels(&[id]).unwrap().get(), i as f64);
    }
    assert_eq!(f.len(), expected.len());
}

#[test]
fn a_family_without_labels_has_one_series() {
    let f = counters(&[]);
    f.with_labels(&[]).unwrap().inc();
    f.with_labels(&[]).unwrap().inc();
    assert_eq!(f.len(), 1);
    assert_eq!(f.with_labels(&[]).unwrap().get(), 2.0);
    assert!(f.remove(&[]));
    assert!(f.is_empty());
}

#[test]
fn clear_removes_everything() {
    let f = counters(&["id"]);
    f.with_labels(&["a"]).unwrap();
    f.with_labels(&["b"]).unwrap();
    f.clear();
    assert!(f.is_empty());
    assert_eq!(f.with_labels(&["a"]).unwrap().get(), 0.0);
}

#[test]
fn hostile_values_are_kept_exactly() {
    let f = counters(&["v"]);
    let hostile = ["", "\"", "\\", "\n", "a\u{0}b", "ñandú 🦀", "\u{feff}"];
    for v in hostile {
        f.with_labels(&[v]).unwrap().inc();
    }
    assert_eq!(f.len(), hostile.len());
    let mut keys = Vec::new();
    f.core.for_each(|c| keys.push(c.key().labels().to_vec()));
    let expected: Vec<Vec<u8>> = hostile.iter().map(|v| v.as_bytes().to_vec()).collect();
    assert_eq!(keys, expected);
}

#[test]
fn concurrent_lookups_create_each_series_once() {
    let f = counters(&["id"]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..2_000 {
                    f.with_labels(&[&(i % 100).to_string()]).unwrap().inc();
                }
            });
        }
    });
    assert_eq!(f.len(), 100);
    let mut total = 0.0;
    f.core.for_each(|c| total += c.get());
    assert_eq!(total, 8_000.0);
}

/// Whether this thread's table holds the series of `values` under the family's
/// current identity.
fn held<M: Series>(f: &Family<M>, values: &[&str]) -> bool {
    let id = f.core.id.load(Relaxed);
    crate::metrics::recent::holds(M::recent(), id, f.core.hash(values), values)
}

/// A second family whose label sets hash exactly as `f`'s do, so that they meet
/// in the same slots of the threads' tables.
fn same_seed(f: &Family<Counter>) -> Family<Counter> {
    let mut core = FamilyCore::new(
        "other_total".into(),
        "".into(),
        LabelNames::new(&["pod"]),
        (),
    );
    core.seed = f.core.seed;
    core.table = RwLock::new(SeriesTable::new(1, f.core.seed));
    Family::from_core(core)
}

#[test]
fn a_label_set_looked_up_again_and_again_stays_exact_across_removal_and_families() {
    let a = counters(&["pod"]);
    let b = same_seed(&a);
    assert_eq!(a.core.hash(&["p"]), b.core.hash(&["p"]));
    for _ in 0..3 {
        a.inc(&["p"]).unwrap(); // from the second time on, from this thread's table
    }
    assert!(held(&a, &["p"]), "the short way is taken");
    b.inc(&["p"]).unwrap(); // same values, same hash, another family
    b.inc(&["p"]).unwrap();
    assert!(held(&a, &["p"]) && held(&b, &["p"]), "both in one pair");
    assert_eq!(a.with_labels(&["p"]).unwrap().get(), 3.0);
    assert_eq!(b.with_labels(&["p"]).unwrap().get(), 2.0);
    // A removed series is not served again: the next update makes a new one.
    a.inc(&["p"]).unwrap();
    assert!(a.remove(&["p"]));
    assert!(!held(&a, &["p"]));
    a.inc(&["p"]).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a.with_labels(&["p"]).unwrap().get(), 1.0);
    a.inc(&["p"]).unwrap();
    a.clear();
    assert!(!held(&a, &["p"]));
    a.inc(&["p"]).unwrap();
    assert_eq!(a.with_labels(&["p"]).unwrap().get(), 1.0);
    // Removing another series leaves this one where it was: one lookup through
    // the lock gives it the family's new identity, the same series.
    a.inc(&["q"]).unwrap();
    assert!(a.remove(&["q"]));
    assert!(!held(&a, &["p"]));
    a.inc(&["p"]).unwrap();
    assert!(held(&a, &["p"]));
    a.inc(&["p"]).unwrap();
    assert_eq!(a.with_labels(&["p"]).unwrap().get(), 3.0);
    assert_eq!(b.with_labels(&["p"]).unwrap().get(), 2.0);
}

#[test]
fn every_kind_of_family_update_goes_the_short_way_and_stays_exact() {
    use crate::metrics::gauge::Gauge;
    use crate::metrics::histogram::{Buckets, Histogram};
    let gauges: Family<Gauge> = Family::from_core(FamilyCore::new(
        "g".into(),
        "".into(),
        LabelNames::new(&["k"]),
        (),
    ));
    let buckets = Buckets::new(&[1.0, 2.0]).unwrap();
    let histograms: Family<Histogram> = Family::from_core(FamilyCore::new(
        "h".into(),
        "".into(),
        LabelNames::new(&["k"]),
        buckets,
    ));
    for i in 0..5 {
        gauges.set(&["x"], f64::from(i)).unwrap();
        gauges.add(&["x"], 0.5).unwrap();
        histograms.observe(&["x"], 1.5).unwrap();
    }
    assert!(held(&gauges, &["x"]) && held(&histograms, &["x"]));
    assert_eq!(gauges.with_labels(&["x"]).unwrap().get(), 4.5);
    let h = histograms.with_labels(&["x"]).unwrap();
    assert_eq!((h.count(), h.sum()), (5, 7.5));
    assert!(histograms.remove(&["x"]));
    histograms.observe(&["x"], 0.5).unwrap();
    assert_eq!(histograms.with_labels(&["x"]).unwrap().count(), 1);
    assert_eq!(h.count(), 5, "the removed series kept its own");
}

#[test]
fn updates_racing_removals_all_land_in_some_series() {
    // Threads update one label set while another thread removes it again and
    // again: every increment is in the series it ended in, removed or not.
    let f = counters(&["pod"]);
    let removed = std::sync::Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while !done.load(Relaxed) && n < 2_000_000 {
                        f.inc(&["p"]).unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for _ in 0..200 {
            let handle = f.with_labels(&["p"]).unwrap();
            if f.remove(&["p"]) {
                removed.lock().unwrap().push(handle);
            }
            std::thread::yield_now();
        }
        done.store(true, Relaxed);
        let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        let mut counted: f64 = removed.lock().unwrap().iter().map(Counter::get).sum();
        f.core.for_each(|c| counted += c.get());
        assert_eq!(counted, total as f64);
    });
}

#[test]
fn a_clear_on_another_thread_reaches_this_threads_table() {
    let f = counters(&["pod"]);
    f.inc(&["p"]).unwrap();
    f.inc(&["p"]).unwrap();
    assert!(held(&f, &["p"]));
    std::thread::scope(|s| {
        s.spawn(|| f.clear());
    });
    assert!(!held(&f, &["p"]));
    f.inc(&["p"]).unwrap();
    assert_eq!(f.with_labels(&["p"]).unwrap().get(), 1.0);
}

#[test]
fn label_sets_sharing_a_slot_of_the_thread_table_stay_apart() {
    // Many more label sets than the table has slots, taking turns: every update
    // lands in its own series whether it is served from the table or the lock.
    let f = counters(&["pod"]);
    let pods: Vec<String> = (0..3 * crate::metrics::recent::SLOTS)
        .map(|i| format!("p{i}"))
        .collect();
    for round in 0..5 {
        for (i, pod) in pods.iter().enumerate() {
            if i % 5 >= round {
                f.inc(&[pod]).unwrap();
            }
        }
    }
    for (i, pod) in pods.iter().enumerate() {
        assert_eq!(f.with_labels(&[pod]).unwrap().get(), (i % 5 + 1) as f64);
    }
}

#[test]
fn threads_keep_their_own_recent_series_and_removals_reach_them_all() {
    let a = counters(&["pod"]);
    let barrier = std::sync::Barrier::new(5);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (a, barrier) = (&a, &barrier);
            s.spawn(move || {
                let pod = format!("p{}", t % 2);
                for _ in 0..1000 {
                    a.inc(&[&pod]).unwrap();
                }
                barrier.wait(); // the main thread removes p0 and p1
                barrier.wait();
                for _ in 0..10 {
                    a.inc(&[&pod]).unwrap();
                }
            });
        }
        barrier.wait();
        assert_eq!(a.with_labels(&["p0"]).unwrap().get(), 2000.0);
        assert_eq!(a.with_labels(&["p1"]).unwrap().get(), 2000.0);
        assert!(a.remove(&["p0"]) && a.remove(&["p1"]));
        barrier.wait();
    });
    assert_eq!(a.with_labels(&["p0"]).unwrap().get(), 20.0);
    assert_eq!(a.with_labels(&["p1"]).unwrap().get(), 20.0);
}
