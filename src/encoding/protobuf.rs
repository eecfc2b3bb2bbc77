//! The Prometheus protobuf exposition format ([`Format::Protobuf`](super::Format::Protobuf)),
//! written by hand: a stream of `io.prometheus.client.MetricFamily` messages,
//! each preceded by its length as a varint (`encoding=delimited`). The schema
//! is `proto/metrics.proto`.
//!
//! # The wire format, as far as it is used here
//!
//! A message is a sequence of fields, each a key (`field number << 3 | wire
//! type`, as a varint) and a value: a varint (wire type 0: `uint64`, enums, and
//! `sint32`/`sint64` after zig-zag, which maps 0, -1, 1, -2 ... to 0, 1, 2, 3 ...),
//! 8 little-endian bytes (wire type 1: `double`), or a length and that many bytes
//! (wire type 2: strings and nested messages). A varint is 7 bits a byte, least
//! significant first, the high bit set on every byte but the last.
//!
//! # Lengths without a second pass
//!
//! A nested message's length comes before it, but is known only once it is
//! written. Each message is written in place after room for a short length (one
//! byte, three for a family); when the length needs another number of bytes, the
//! message is moved by that difference (one `memmove` within the buffer, which
//! has room for it once warm). Label pairs, whose length is known up front, are
//! written directly. Nothing is allocated once the buffer has grown.
//!
//! # What the format holds that the text formats do not, and the reverse
//!
//! * Families without any series are left out (the text formats write their
//!   `# HELP` and `# TYPE` lines).
//! * A classic histogram's buckets are written without `+Inf`, which the schema
//!   makes optional: it is the sample count.
//! * The sum of a histogram is always written (OpenMetrics leaves it out with
//!   negative bounds).
//! * An info family is a gauge named with `_info`, as in the text format.
//! * Creation times (`created_timestamp`) are written when the registry asks for
//!   `_created` samples.
//! * Exemplars are written as OpenMetrics writes them (counters, and the finite
//!   buckets of classic histograms; the `+Inf` bucket, left out, takes its
//!   exemplar with it).

use super::Writer;
use crate::metrics::MetricType;
use crate::metrics::counter::Counter;
use crate::metrics::exemplar::Exemplars;
use crate::metrics::family::{FamilyCore, Series};
use crate::metrics::gauge::Gauge;
use crate::metrics::histogram::Histogram;
use crate::metrics::key::{LabelNames, split_labels};
use crate::metrics::native::{NativeHistogram, NativeSnapshot};

/// The `Content-Type` of the delimited protobuf stream.
pub(crate) const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

/// Field numbers of the messages written here (see `proto/metrics.proto`).
mod field {
    pub(super) mod family {
        pub(crate) const NAME: u64 = 1;
        pub(crate) const HELP: u64 = 2;
        pub(crate) const TYPE: u64 = 3;
        pub(crate) const METRIC: u64 = 4;
        pub(crate) const UNIT: u64 = 5;
    }
    pub(super) mod metric {
        pub(crate) const LABEL: u64 = 1;
        pub(crate) const GAUGE: u64 = 2;
        pub(crate) const COUNTER: u64 = 3;
        pub(crate) const HISTOGRAM: u64 = 7;
    }
    pub(super) mod label {
        pub(crate) const NAME: u64 = 1;
        pub(crate) const VALUE: u64 = 2;
    }
    /// `Gauge.value` and `Counter.value`.
    pub(super) const VALUE: u64 = 1;
    pub(super) const COUNTER_EXEMPLAR: u64 = 2;
    pub(super) const COUNTER_CREATED: u64 = 3;
    pub(super) mod exemplar {
        pub(crate) const LABEL: u64 = 1;
        pub(crate) const VALUE: u64 = 2;
        pub(crate) const TIMESTAMP: u64 = 3;
    }
    pub(super) mod histogram {
        pub(crate) const SAMPLE_COUNT: u64 = 1;
        pub(crate) const SAMPLE_SUM: u64 = 2;
        pub(crate) const BUCKET: u64 = 3;
        pub(crate) const SCHEMA: u64 = 5;
        pub(crate) const ZERO_THRESHOLD: u64 = 6;
        pub(crate) const ZERO_COUNT: u64 = 7;
        pub(crate) const NEGATIVE_SPAN: u64 = 9;
        pub(crate) const NEGATIVE_DELTA: u64 = 10;
        pub(crate) const POSITIVE_SPAN: u64 = 12;
        pub(crate) const POSITIVE_DELTA: u64 = 13;
        pub(crate) const CREATED: u64 = 15;
    }
    pub(super) mod bucket {
        pub(crate) const CUMULATIVE_COUNT: u64 = 1;
        pub(crate) const UPPER_BOUND: u64 = 2;
        pub(crate) const EXEMPLAR: u64 = 3;
    }
    pub(super) mod span {
        pub(crate) const OFFSET: u64 = 1;
        pub(crate) const LENGTH: u64 = 2;
    }
    pub(super) mod timestamp {
        pub(crate) const SECONDS: u64 = 1;
        pub(crate) const NANOS: u64 = 2;
    }
}

/// The `MetricType` enum of the schema.
fn type_number(kind: MetricType) -> u64 {
    match kind {
        MetricType::Counter => 0,
        MetricType::Gauge | MetricType::Info => 1,
        MetricType::Histogram => 4,
    }
}

// ---------------------------------------------------------------------------
// Wire primitives.

/// Appends `v` as a varint.
#[inline]
pub(crate) fn varint(buf: &mut Vec<u8>, mut v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
        return;
    }
    let mut bytes = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        bytes[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    bytes[n] = v as u8;
    buf.extend_from_slice(&bytes[..=n]);
}

/// How many bytes the varint of `v` takes.
#[inline]
pub(crate) fn varint_len(v: u64) -> usize {
    // One byte per 7 significant bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Zig-zag, for `sint32` and `sint64`: small magnitudes of either sign stay short.
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    varint(buf, (field << 3) | wire);
}

#[inline]
fn uint_field(buf: &mut Vec<u8>, field: u64, v: u64) {
    key(buf, field, VARINT);
    varint(buf, v);
}

#[inline]
fn sint_field(buf: &mut Vec<u8>, field: u64, v: i64) {
    key(buf, field, VARINT);
    varint(buf, zigzag(v));
}

#[inline]
fn double_field(buf: &mut Vec<u8>, field: u64, v: f64) {
    key(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn bytes_field(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(buf, field, LEN);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Writes what `body` writes, preceded by its length as a varint, with room for
/// `reserve` bytes of length made beforehand (see the module's docs).
#[inline]
fn length_prefixed(buf: &mut Vec<u8>, reserve: usize, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.resize(start + reserve, 0);
    body(buf);
    close_length(buf, start, reserve);
}

/// Puts the length of what follows `start + reserve` at `start`, moving it if
/// the length takes other than `reserve` bytes.
fn close_length(buf: &mut Vec<u8>, start: usize, reserve: usize) {
    let body = start + reserve;
    let len = buf.len() - body;
    let needed = varint_len(len as u64);
    if needed > reserve {
        buf.resize(buf.len() + needed - reserve, 0);
        buf.copy_within(body..body + len, start + needed);
    } else if needed < reserve {
        buf.copy_within(body..body + len, start + needed);
        buf.truncate(start + needed + len);
    }
    let mut v = len as u64;
    for byte in &mut buf[start..start + needed] {
        *byte = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
    }
    buf[start + needed - 1] &= 0x7f;
}

/// A nested message in field `field`.
#[inline]
fn message(buf: &mut Vec<u8>, field: u64, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    length_prefixed(buf, 1, body);
}

/// A nested message that is likely longer than 127 bytes: room for 2 bytes
/// of length (up to 16 KiB).
#[inline]
fn long_message(buf: &mut Vec<u8>, field: u64, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    length_prefixed(buf, 2, body);
}

/// A `LabelPair` (field 1 of `Metric`), whose length is known up front.
#[inline]
fn label_pair(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let len = 2 + varint_len(name.len() as u64) + name.len() + varint_len(value.len() as u64);
    key(buf, field::metric::LABEL, LEN);
    varint(buf, (len + value.len()) as u64);
    bytes_field(buf, field::label::NAME, name);
    bytes_field(buf, field::label::VALUE, value);
}

/// The constant labels and the series' own, from its joined label values.
fn joined_labels(buf: &mut Vec<u8>, names: &LabelNames, joined: &[u8]) {
    for (name, value) in names.constant_pairs() {
        label_pair(buf, name.as_bytes(), value.as_bytes());
    }
    let own = names.own_names();
    for (name, value) in own.iter().zip(split_labels(joined, own.len())) {
        label_pair(buf, name.as_bytes(), value);
    }
}

/// The constant labels and a collector's label values.
fn value_labels(buf: &mut Vec<u8>, names: &LabelNames, values: &[&str]) {
    for (name, value) in names.constant_pairs() {
        label_pair(buf, name.as_bytes(), value.as_bytes());
    }
    for (name, value) in names.own_names().iter().zip(values) {
        label_pair(buf, name.as_bytes(), value.as_bytes());
    }
}

/// A `google.protobuf.Timestamp` in field `field`, from milliseconds since the epoch.
fn timestamp(buf: &mut Vec<u8>, field: u64, millis: u64) {
    message(buf, field, |buf| {
        uint_field(buf, field::timestamp::SECONDS, millis / 1000);
        let nanos = (millis % 1000) * 1_000_000;
        if nanos != 0 {
            uint_field(buf, field::timestamp::NANOS, nanos);
        }
    });
}

// ---------------------------------------------------------------------------
// Families.

/// Where a family's message starts, and where its series begin.
pub(crate) struct FamilyMark {
    start: usize,
    series: usize,
}

/// The room left for a family's length: 3 bytes hold up to 2 MiB.
const FAMILY_RESERVE: usize = 3;

/// Starts a `MetricFamily`: its length (to be filled in), name, help and type.
pub(crate) fn family_start(
    buf: &mut Vec<u8>,
    name: &str,
    help: &str,
    kind: MetricType,
) -> FamilyMark {
    let start = buf.len();
    buf.resize(start + FAMILY_RESERVE, 0);
    bytes_field(buf, field::family::NAME, name.as_bytes());
    if !help.is_empty() {
        bytes_field(buf, field::family::HELP, help.as_bytes());
    }
    uint_field(buf, field::family::TYPE, type_number(kind));
    FamilyMark {
        start,
        series: buf.len(),
    }
}

/// Ends a family: its unit, then its length; a family without series is taken
/// back out of the stream.
pub(crate) fn family_end(buf: &mut Vec<u8>, mark: FamilyMark, unit: Option<&str>) {
    if buf.len() == mark.series {
        buf.truncate(mark.start);
        return;
    }
    if let Some(unit) = unit {
        bytes_field(buf, field::family::UNIT, unit.as_bytes());
    }
    close_length(buf, mark.start, FAMILY_RESERVE);
}

/// A family of series: its header, then per series a `Metric` message with the
/// series' labels and what `body` writes, then its end. `reserve` is the room
/// for each message's length: 1 byte, or 2 where a message may pass 127 bytes
/// often (native histograms).
fn series_family<M: Series>(
    buf: &mut Vec<u8>,
    family: &FamilyCore<M>,
    kind: MetricType,
    unit: Option<&str>,
    reserve: usize,
    mut body: impl FnMut(&mut Vec<u8>, &M),
) {
    let mark = family_start(buf, &family.name, &family.help, kind);
    family.for_each(|series| {
        key(buf, field::family::METRIC, LEN);
        length_prefixed(buf, reserve, |buf| {
            joined_labels(buf, &family.label_names, series.key().labels());
            body(buf, series);
        });
    });
    family_end(buf, mark, unit);
}

impl Writer<'_> {
    pub(super) fn protobuf_counters(&mut self, family: &FamilyCore<Counter>, unit: Option<&str>) {
        let created = self.created;
        series_family(
            self.buf,
            family,
            MetricType::Counter,
            unit,
            1,
            |buf, counter| {
                let (whole, fraction) = counter.parts();
                message(buf, field::metric::COUNTER, |buf| {
                    double_field(buf, field::VALUE, whole as f64 + fraction);
                    exemplar(buf, field::COUNTER_EXEMPLAR, counter.exemplar(), 0);
                    if created {
                        let millis = counter.key().created_millis();
                        timestamp(buf, field::COUNTER_CREATED, millis);
                    }
                });
            },
        );
    }

    pub(super) fn protobuf_gauges(&mut self, family: &FamilyCore<Gauge>, unit: Option<&str>) {
        series_family(
            self.buf,
            family,
            MetricType::Gauge,
            unit,
            1,
            |buf, gauge| {
                message(buf, field::metric::GAUGE, |buf| {
                    double_field(buf, field::VALUE, gauge.get());
                });
            },
        );
    }

    pub(super) fn protobuf_histograms(
        &mut self,
        family: &FamilyCore<Histogram>,
        unit: Option<&str>,
    ) {
        let created = self.created;
        let bounds = &family.config.bounds[..family.config.finite];
        series_family(
            self.buf,
            family,
            MetricType::Histogram,
            unit,
            1,
            |buf, histogram| {
                let millis = created.then(|| histogram.key().created_millis());
                message(buf, field::metric::HISTOGRAM, |buf| {
                    let exemplars = Some(histogram.exemplars()).filter(|e| !e.is_empty());
                    classic_histogram(
                        buf,
                        bounds,
                        |i| histogram.bucket_count(i),
                        histogram.sum(),
                        millis,
                        exemplars,
                    );
                });
            },
        );
    }

    pub(super) fn protobuf_native_histograms(
        &mut self,
        family: &FamilyCore<NativeHistogram>,
        unit: Option<&str>,
    ) {
        let created = self.created;
        let classic = family.config.classic.as_ref();
        let bounds = classic.map_or(&[][..], |b| &b.bounds[..b.finite]);
        series_family(
            self.buf,
            family,
            MetricType::Histogram,
            unit,
            2,
            |buf, histogram| {
                let millis = created.then(|| histogram.key().created_millis());
                super::native::with_snapshot(histogram, |snapshot| {
                    long_message(buf, field::metric::HISTOGRAM, |buf| {
                        native_histogram(buf, bounds, snapshot, millis);
                    });
                });
            },
        );
    }
}

/// The fields of a native histogram, its classic buckets first if it has any.
fn native_histogram(
    buf: &mut Vec<u8>,
    bounds: &[f64],
    snapshot: &NativeSnapshot<'_>,
    created: Option<u64>,
) {
    let mut cumulative = 0u64;
    for (&bound, &count) in bounds.iter().zip(snapshot.classic) {
        cumulative += count;
        bucket(buf, bound, cumulative);
    }
    uint_field(buf, field::histogram::SAMPLE_COUNT, snapshot.count);
    double_field(buf, field::histogram::SAMPLE_SUM, snapshot.sum);
    sint_field(buf, field::histogram::SCHEMA, i64::from(snapshot.schema));
    double_field(
        buf,
        field::histogram::ZERO_THRESHOLD,
        snapshot.zero_threshold,
    );
    uint_field(buf, field::histogram::ZERO_COUNT, snapshot.zero_count);
    let negative = spans(
        buf,
        field::histogram::NEGATIVE_SPAN,
        field::histogram::NEGATIVE_DELTA,
        snapshot.negative.buckets(),
    );
    let positive = spans(
        buf,
        field::histogram::POSITIVE_SPAN,
        field::histogram::POSITIVE_DELTA,
        snapshot.positive.buckets(),
    );
    if !negative && !positive {
        // No bucket yet: one empty span says that this is a native histogram.
        span(buf, field::histogram::POSITIVE_SPAN, 0, 0);
    }
    if let Some(millis) = created {
        timestamp(buf, field::histogram::CREATED, millis);
    }
}

/// The largest run of empty buckets kept inside a span (as zero deltas,
/// cheaper than a new span).
const GAP_IN_SPAN: i32 = 2;

/// Writes the buckets (index, count; by increasing index, none empty) as
/// spans and deltas: each span after its deltas (the order of the fields
/// apart does not matter), each count as the difference from the bucket
/// before it, across spans. Returns whether there was any bucket.
fn spans(
    buf: &mut Vec<u8>,
    span_field: u64,
    delta_field: u64,
    buckets: impl Iterator<Item = (i32, u64)>,
) -> bool {
    // The open span: its offset (from the previous span's end) and length,
    // and the index after its last bucket.
    let mut open: Option<(i32, u32, i32)> = None;
    let mut previous = 0i64;
    for (index, count) in buckets {
        match &mut open {
            Some((_, length, end)) if index - *end <= GAP_IN_SPAN => {
                for _ in *end..index {
                    sint_field(buf, delta_field, -previous);
                    previous = 0;
                }
                *length += (index - *end) as u32 + 1;
            }
            Some((offset, length, end)) => {
                span(buf, span_field, *offset, *length);
                open = Some((index - *end, 1, 0));
            }
            None => open = Some((index, 1, 0)),
        }
        if let Some((_, _, end)) = &mut open {
            *end = index + 1;
        }
        sint_field(buf, delta_field, count as i64 - previous);
        previous = count as i64;
    }
    match open {
        Some((offset, length, _)) => {
            span(buf, span_field, offset, length);
            true
        }
        None => false,
    }
}

/// A `BucketSpan`, whose length is known up front.
fn span(buf: &mut Vec<u8>, field: u64, offset: i32, length: u32) {
    let offset = zigzag(i64::from(offset));
    key(buf, field, LEN);
    varint(
        buf,
        (2 + varint_len(offset) + varint_len(u64::from(length))) as u64,
    );
    uint_field(buf, field::span::OFFSET, offset);
    uint_field(buf, field::span::LENGTH, u64::from(length));
}

/// The fields of a classic histogram: `count(i)` is bucket `i`'s own count
/// (`i == bounds.len()` the `+Inf` bucket); the total is their sum. The count
/// is written after the buckets, whose total it is (parsers take fields in any
/// order): one read of each bucket, so the two always agree.
fn classic_histogram(
    buf: &mut Vec<u8>,
    bounds: &[f64],
    mut count: impl FnMut(usize) -> u64,
    sum: f64,
    created: Option<u64>,
    exemplars: Option<&Exemplars>,
) {
    let mut cumulative = 0u64;
    for (i, &bound) in bounds.iter().enumerate() {
        cumulative = cumulative.saturating_add(count(i));
        match exemplars {
            None => bucket(buf, bound, cumulative),
            Some(exemplars) => message(buf, field::histogram::BUCKET, |buf| {
                uint_field(buf, field::bucket::CUMULATIVE_COUNT, cumulative);
                double_field(buf, field::bucket::UPPER_BOUND, bound);
                exemplar(buf, field::bucket::EXEMPLAR, exemplars, i);
            }),
        }
    }
    cumulative = cumulative.saturating_add(count(bounds.len()));
    uint_field(buf, field::histogram::SAMPLE_COUNT, cumulative);
    double_field(buf, field::histogram::SAMPLE_SUM, sum);
    if let Some(millis) = created {
        timestamp(buf, field::histogram::CREATED, millis);
    }
}

/// The exemplar in slot `i`, if any, as an `Exemplar` in field `field`: its
/// labels (kept as OpenMetrics renders them, `name="value",...`, and unescaped
/// here), value and time.
fn exemplar(buf: &mut Vec<u8>, field: u64, exemplars: &Exemplars, i: usize) {
    exemplars.read(i, |labels, value, millis| {
        message(buf, field, |buf| {
            let mut rest = labels;
            while let Some(eq) = rest.iter().position(|&b| b == b'=') {
                let name = &rest[..eq];
                // `="`, the escaped value, `"`, then `,` before the next label.
                let value = &rest[eq + 2..];
                let end = closing_quote(value);
                escaped_label_pair(buf, name, &value[..end]);
                rest = value.get(end + 2..).unwrap_or(&[]);
            }
            double_field(buf, field::exemplar::VALUE, value);
            timestamp(buf, field::exemplar::TIMESTAMP, millis);
        });
    });
}

/// Where the quoted value that `value` starts ends (its closing quote).
fn closing_quote(value: &[u8]) -> usize {
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    value.len()
}

/// A `LabelPair` whose value is escaped as in the text formats (`\\`, `\"`,
/// `\n`): written unescaped.
fn escaped_label_pair(buf: &mut Vec<u8>, name: &[u8], escaped: &[u8]) {
    let backslashes = {
        let (mut n, mut i) = (0, 0);
        while i < escaped.len() {
            if escaped[i] == b'\\' {
                n += 1;
                i += 1;
            }
            i += 1;
        }
        n
    };
    let value_len = escaped.len() - backslashes;
    let len = 2 + varint_len(name.len() as u64) + name.len() + varint_len(value_len as u64);
    key(buf, field::exemplar::LABEL, LEN);
    varint(buf, (len + value_len) as u64);
    bytes_field(buf, field::label::NAME, name);
    key(buf, field::label::VALUE, LEN);
    varint(buf, value_len as u64);
    let mut i = 0;
    while i < escaped.len() {
        let b = escaped[i];
        if b == b'\\' && i + 1 < escaped.len() {
            i += 1;
            buf.push(if escaped[i] == b'n' {
                b'\n'
            } else {
                escaped[i]
            });
        } else {
            buf.push(b);
        }
        i += 1;
    }
}

/// A classic `Bucket`, whose length is known up front.
#[inline]
fn bucket(buf: &mut Vec<u8>, bound: f64, cumulative: u64) {
    key(buf, field::histogram::BUCKET, LEN);
    varint(buf, (1 + varint_len(cumulative) + 9) as u64);
    uint_field(buf, field::bucket::CUMULATIVE_COUNT, cumulative);
    double_field(buf, field::bucket::UPPER_BOUND, bound);
}

// ---------------------------------------------------------------------------
// Collectors.

/// One sample of a collector's gauge, counter or info family.
pub(crate) fn collected_value(
    buf: &mut Vec<u8>,
    kind: MetricType,
    names: &LabelNames,
    values: &[&str],
    value: f64,
) {
    message(buf, field::family::METRIC, |buf| {
        value_labels(buf, names, values);
        let which = if kind == MetricType::Counter {
            field::metric::COUNTER
        } else {
            field::metric::GAUGE
        };
        message(buf, which, |buf| double_field(buf, field::VALUE, value));
    });
}

/// One series of a collector's histogram family (already checked).
pub(crate) fn collected_histogram(
    buf: &mut Vec<u8>,
    names: &LabelNames,
    values: &[&str],
    buckets: &[(f64, u64)],
    count: u64,
    sum: f64,
) {
    message(buf, field::family::METRIC, |buf| {
        value_labels(buf, names, values);
        message(buf, field::metric::HISTOGRAM, |buf| {
            for &(bound, cumulative) in buckets {
                bucket(buf, bound, cumulative);
            }
            uint_field(buf, field::histogram::SAMPLE_COUNT, count);
            double_field(buf, field::histogram::SAMPLE_SUM, sum);
        });
    });
}

#[cfg(test)]
mod tests;
