//! The metric types, one file each, and the labelled families that hold them.
//!
//! Every metric is a cheap handle (an `Arc`) around atomics: clone it, keep it,
//! update it from any thread. Nothing here knows the exposition formats: the
//! encoders read the metrics, never the other way round.

pub(crate) mod counter;
pub(crate) mod exemplar;
pub(crate) mod family;
pub(crate) mod gauge;
pub(crate) mod histogram;
pub(crate) mod key;
pub(crate) mod native;
pub(crate) mod recent;
pub(crate) mod stripe;
pub(crate) mod table;
pub(crate) mod timer;

use crate::Error;
use std::time::{SystemTime, UNIX_EPOCH};

/// The kind of a metric family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricType {
    /// A value that only goes up (and resets when the process restarts).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted in cumulative buckets, with their sum and count.
    Histogram,
    /// Facts about the target as labels on a sample of value 1 (`build_info`).
    Info,
}

impl MetricType {
    /// The word on the `# TYPE` line; the text format has no `info` type and
    /// writes an info family as a gauge.
    pub(crate) fn as_str(self, openmetrics: bool) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Info if openmetrics => "info",
            MetricType::Info => "gauge",
        }
    }

    /// The suffix of the sample name that OpenMetrics leaves off the family
    /// name (`_total` of a counter, `_info` of an info family).
    pub(crate) fn sample_suffix(self) -> &'static str {
        match self {
            MetricType::Counter => "_total",
            MetricType::Info => "_info",
            MetricType::Gauge | MetricType::Histogram => "",
        }
    }

    /// The OpenMetrics family name of a family exposed as `exposed`: without
    /// its [`sample_suffix`](MetricType::sample_suffix).
    pub(crate) fn family_name(self, exposed: &str) -> &str {
        exposed
            .strip_suffix(self.sample_suffix())
            .unwrap_or(exposed)
    }
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`, with `:` allowed too if `colons`.
fn valid_name(name: &str, colons: bool) -> bool {
    !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphabetic()
                || b == b'_'
                || (colons && b == b':')
                || (i > 0 && b.is_ascii_digit())
        })
}

/// Whether `name` is a valid label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn valid_label_name(name: &str) -> bool {
    valid_name(name, false)
}

/// Checks a metric name against the Prometheus rule `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn check_metric_name(name: &str) -> Result<(), Error> {
    if valid_name(name, true) {
        Ok(())
    } else {
        Err(Error::InvalidMetricName(name.to_owned()))
    }
}

/// Checks the label names of a family: the Prometheus rule `[a-zA-Z_][a-zA-Z0-9_]*`,
/// no `__` prefix (reserved for Prometheus itself), no name twice, and none of the
/// names the library writes itself for this type (`le` and `quantile` on histograms).
pub(crate) fn check_label_names(kind: MetricType, names: &[&str]) -> Result<(), Error> {
    for (i, name) in names.iter().enumerate() {
        if !valid_name(name, false) {
            return Err(Error::InvalidLabelName((*name).to_owned()));
        }
        let reserved = name.starts_with("__")
            || (kind == MetricType::Histogram && (*name == "le" || *name == "quantile"));
        if reserved {
            return Err(Error::ReservedLabelName((*name).to_owned()));
        }
        if names[..i].contains(name) {
            return Err(Error::DuplicateLabelName((*name).to_owned()));
        }
    }
    Ok(())
}

/// Seconds since the Unix epoch, with fraction.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Milliseconds since the Unix epoch: when a series was created, for `_created`.
pub(crate) fn unix_now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_the_prometheus_rule() {
        for ok in [
            "a",
            "_a",
            ":a",
            "a:b_c9",
            "slpocapp_request_operations_total",
        ] {
            assert_eq!(check_metric_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "a.b", "a{b}"] {
            assert_eq!(
                check_metric_name(bad),
                Err(Error::InvalidMetricName(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn label_names_follow_the_prometheus_rule() {
        assert_eq!(
            check_label_names(MetricType::Counter, &["namespace", "pod", "_x1"]),
            Ok(())
        );
        for bad in ["", "1a", "a:b", "a-b", "ñ"] {
            assert_eq!(
                check_label_names(MetricType::Counter, &[bad]),
                Err(Error::InvalidLabelName(bad.to_owned()))
            );
        }
    }

    #[test]
    fn reserved_and_duplicate_label_names_are_refused() {
        let reserved =
            |k, n: &str| check_label_names(k, &[n]) == Err(Error::ReservedLabelName(n.to_owned()));
        assert!(reserved(MetricType::Counter, "__name__"));
        assert!(reserved(MetricType::Gauge, "__x"));
        assert!(reserved(MetricType::Histogram, "le"));
        assert!(reserved(MetricType::Histogram, "quantile"));
        // Outside histograms `le` and `quantile` are ordinary names.
        assert_eq!(
            check_label_names(MetricType::Counter, &["le", "quantile"]),
            Ok(())
        );
        assert_eq!(
            check_label_names(MetricType::Gauge, &["a", "b", "a"]),
            Err(Error::DuplicateLabelName("a".to_owned()))
        );
    }
}
