//! Exemplars: one recent observation per counter, or per histogram bucket,
//! with labels that point elsewhere (a trace ID), exposed in OpenMetrics and in
//! the protobuf format (the text format 0.0.4 has no exemplars).
//!
//! A series gets its exemplar slots the first time an exemplar is recorded, so
//! series that never see one cost a pointer and no time. A slot is a mutex that
//! both sides only *try* to take: a recording that finds it taken (by a scrape,
//! or by another recording) drops its exemplar, and a scrape that finds it taken
//! leaves that exemplar out of this scrape. Neither ever waits for the other;
//! an exemplar is a sample, and the next one comes soon.

use crate::Error;
use crate::metrics::key::escape;
use crate::metrics::{unix_now_millis, valid_label_name};
use std::sync::{Mutex, OnceLock};

/// The most UTF-8 characters an exemplar's label names and values may have
/// together (OpenMetrics 1.0).
pub const EXEMPLAR_LABELS_MAX_CHARS: usize = 128;

/// The exemplar slots of one series, made on first use: 16 bytes per series
/// until then (a thin pointer and the once-flag).
#[derive(Debug, Default)]
pub(crate) struct Exemplars {
    slots: OnceLock<Box<Slots>>,
}

/// Boxed once more so that the pointer in every series is a thin one.
#[derive(Debug)]
struct Slots(Box<[Slot]>);

#[derive(Debug, Default)]
struct Slot(Mutex<Recorded>);

#[derive(Debug, Default)]
struct Recorded {
    /// Whether an exemplar was recorded.
    set: bool,
    /// `name="value",...`, escaped.
    labels: Vec<u8>,
    value: f64,
    millis: u64,
}

impl Exemplars {
    /// Records an exemplar in slot `i` of `count` (made on first use). The
    /// labels are checked first; a busy slot drops the exemplar silently.
    pub(crate) fn record(
        &self,
        count: usize,
        i: usize,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), Error> {
        check_labels(labels)?;
        let slots = self
            .slots
            .get_or_init(|| Box::new(Slots((0..count).map(|_| Slot::default()).collect())));
        let Some(Slot(slot)) = slots.0.get(i) else {
            return Ok(());
        };
        let Ok(mut recorded) = slot.try_lock() else {
            return Ok(());
        };
        recorded.labels.clear();
        for (n, (name, label_value)) in labels.iter().enumerate() {
            if n > 0 {
                recorded.labels.push(b',');
            }
            recorded.labels.extend_from_slice(name.as_bytes());
            recorded.labels.extend_from_slice(b"=\"");
            escape(&mut recorded.labels, label_value.as_bytes(), true);
            recorded.labels.push(b'"');
        }
        recorded.set = true;
        recorded.value = value;
        recorded.millis = unix_now_millis();
        Ok(())
    }

    /// Whether no exemplar was ever recorded (the slots are not made yet).
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.get().is_none()
    }

    /// Calls `f(labels, value, millis)` with the exemplar in slot `i`, if one
    /// was recorded and the slot is free now.
    pub(crate) fn read(&self, i: usize, f: impl FnOnce(&[u8], f64, u64)) {
        let Some(Slot(slot)) = self.slots.get().and_then(|s| s.0.get(i)) else {
            return;
        };
        if let Ok(recorded) = slot.try_lock()
            && recorded.set
        {
            f(&recorded.labels, recorded.value, recorded.millis);
        }
    }
}

/// Label names valid and distinct, at most 128 characters of names and values.
fn check_labels(labels: &[(&str, &str)]) -> Result<(), Error> {
    let mut chars = 0;
    for (i, (name, value)) in labels.iter().enumerate() {
        if !valid_label_name(name) || labels[..i].iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidExemplar(format!(
                "label name {name:?} is not valid or given twice"
            )));
        }
        chars += name.chars().count() + value.chars().count();
    }
    if chars > EXEMPLAR_LABELS_MAX_CHARS {
        return Err(Error::InvalidExemplar(format!(
            "its labels have {chars} characters, more than {EXEMPLAR_LABELS_MAX_CHARS}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(e: &Exemplars, i: usize) -> Option<(String, f64)> {
        let mut got = None;
        e.read(i, |labels, value, _| {
            got = Some((String::from_utf8(labels.to_vec()).unwrap(), value))
        });
        got
    }

    #[test]
    fn records_the_latest_and_escapes_its_labels() {
        let e = Exemplars::default();
        assert_eq!(read(&e, 0), None, "nothing before the first");
        e.record(2, 1, &[("trace_id", "a\"b")], 0.5).unwrap();
        assert_eq!(read(&e, 0), None);
        assert_eq!(read(&e, 1), Some(("trace_id=\"a\\\"b\"".into(), 0.5)));
        e.record(2, 1, &[("trace_id", "c"), ("span", "d")], 2.0)
            .unwrap();
        assert_eq!(read(&e, 1), Some(("trace_id=\"c\",span=\"d\"".into(), 2.0)));
        e.record(2, 0, &[], 1.0).unwrap();
        assert_eq!(read(&e, 0), Some((String::new(), 1.0)));
    }

    #[test]
    fn labels_over_128_characters_or_invalid_are_refused() {
        let e = Exemplars::default();
        let at_limit = "é".repeat(128 - 8);
        e.record(1, 0, &[("trace_id", &at_limit)], 1.0).unwrap();
        let over = "é".repeat(128 - 7);
        assert!(matches!(
            e.record(1, 0, &[("trace_id", &over)], 1.0),
            Err(Error::InvalidExemplar(_))
        ));
        for bad in [&[("2x", "v")][..], &[("a", "1"), ("a", "2")], &[("", "v")]] {
            assert!(e.record(1, 0, bad, 1.0).is_err(), "{bad:?}");
        }
        // The refused ones left the recorded one in place.
        assert_eq!(read(&e, 0).unwrap().0.chars().count(), 128 + 3);
    }

    #[test]
    fn a_busy_slot_is_skipped_by_both_sides_without_waiting() {
        let e = Exemplars::default();
        e.record(1, 0, &[("a", "1")], 1.0).unwrap();
        let slots = e.slots.get().unwrap();
        let held = slots.0[0].0.lock().unwrap();
        // A recording while a scrape holds the slot returns at once, dropped.
        e.record(1, 0, &[("a", "2")], 2.0).unwrap();
        // A scrape while the slot is held sees nothing, at once.
        let mut seen = false;
        e.read(0, |_, _, _| seen = true);
        assert!(!seen);
        drop(held);
        assert_eq!(read(&e, 0), Some(("a=\"1\"".into(), 1.0)));
    }
}
