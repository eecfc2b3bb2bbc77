//! Native histogram families in every format.
//!
//! The protobuf format carries the native buckets (and the classic ones, when
//! the histogram has both). The text formats know no native buckets: a
//! histogram with classic buckets is written as a classic histogram; one
//! without is written as its `_count` and `_sum` (OpenMetrics, which requires
//! a `+Inf` bucket in every histogram, gets that bucket too).
//!
//! Each series is read once per scrape, as a consistent snapshot built in a
//! buffer kept per thread, so a warm scrape allocates nothing.

use super::{HistogramLines, Writer};
use crate::metrics::MetricType;
use crate::metrics::family::{FamilyCore, Series};
use crate::metrics::native::{NativeHistogram, NativeSnapshot};
use std::cell::RefCell;

thread_local! {
    /// Where the snapshots are built; it keeps its size from scrape to scrape.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with a consistent snapshot of `histogram`.
pub(super) fn with_snapshot<R>(
    histogram: &NativeHistogram,
    f: impl FnOnce(&NativeSnapshot<'_>) -> R,
) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => f(&histogram.inner.snapshot(&mut scratch)),
        // Only if `f` itself scraped: a buffer of its own then.
        Err(_) => f(&histogram.inner.snapshot(&mut Vec::new())),
    })
}

impl Writer<'_> {
    pub(crate) fn native_histograms(
        &mut self,
        family: &FamilyCore<NativeHistogram>,
        unit: Option<&str>,
    ) {
        if self.protobuf {
            return self.protobuf_native_histograms(family, unit);
        }
        let name = &family.name;
        self.header(name, &family.help, MetricType::Histogram, unit);
        let classic = family.config.classic.as_ref();
        family.for_each(|histogram| {
            let labels =
                |out: &mut Self| out.joined_labels(&family.label_names, histogram.key().labels());
            let created = Some(histogram.key().created_millis());
            with_snapshot(histogram, |snapshot| match classic {
                Some(buckets) => {
                    let le = if self.openmetrics {
                        &buckets.le_openmetrics
                    } else {
                        &buckets.le_text
                    };
                    let series = HistogramLines {
                        name,
                        buckets: le.len(),
                        sum: snapshot.sum,
                        negative: buckets.negative,
                        created,
                        exemplars: None,
                    };
                    self.histogram_series(
                        &series,
                        labels,
                        |buf, i| buf.extend_from_slice(le[i].as_bytes()),
                        |i| snapshot.classic[i],
                    );
                }
                None if self.openmetrics => {
                    let series = HistogramLines {
                        name,
                        buckets: 1,
                        sum: snapshot.sum,
                        negative: false,
                        created,
                        exemplars: None,
                    };
                    self.histogram_series(
                        &series,
                        labels,
                        |buf, _| buf.extend_from_slice(b"+Inf"),
                        |_| snapshot.count,
                    );
                }
                None => {
                    self.buf.extend_from_slice(name.as_bytes());
                    self.buf.extend_from_slice(b"_count");
                    let labels = labels(self);
                    self.close_labels(&labels);
                    self.count(snapshot.count);
                    self.sample_start(name, "_sum", &labels);
                    self.close_labels(&labels);
                    self.value(snapshot.sum);
                }
            });
        });
    }
}
