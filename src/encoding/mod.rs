//! The exposition formats, written by hand, apart from the metrics.
//!
//! * Prometheus text format 0.0.4 ([`Format::Text`]).
//! * OpenMetrics 1.0.0 ([`Format::OpenMetrics`]): counter families are named without
//!   `_total`, counters and histograms carry `_created` if the registry asks for
//!   it, `le` bounds are canonical
//!   numbers, and the exposition ends with `# EOF`.
//! * The Prometheus protobuf format ([`Format::Protobuf`], in [`protobuf`]).
//!
//! All write into a `Vec<u8>` the caller owns and may reuse: once it has grown to
//! the size of a scrape, encoding allocates nothing. Families come in registration
//! order and series in creation order, so the output is the same from run to run.

use crate::Error;
use crate::metrics::MetricType;
use crate::metrics::counter::Counter;
use crate::metrics::exemplar::Exemplars;
use crate::metrics::family::{FamilyCore, Series};
use crate::metrics::gauge::Gauge;
use crate::metrics::histogram::Histogram;
use crate::metrics::key::{BYTE_CLASS, LabelNames, NEXT_VALUE, PLAIN, escape, escaped};
use crate::number::{write_canonical, write_count, write_float, write_uint};
use std::ops::Range;

mod native;
mod protobuf;

/// An exposition format, with its HTTP content type.
///
/// ```
/// use promlite::Format;
///
/// // What Prometheus 2.x sends when it scrapes:
/// let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(Format::from_accept(accept), Format::OpenMetrics);
/// assert_eq!(Format::from_accept("*/*"), Format::Text); // curl
/// // Prometheus 2.42 with `--enable-feature=native-histograms`:
/// let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(Format::from_accept(native), Format::Protobuf);
/// assert_eq!(Format::Text.content_type(), "text/plain; version=0.0.4; charset=utf-8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// The Prometheus protobuf format: delimited `io.prometheus.client.MetricFamily`
    /// messages, the only format that carries native histograms.
    Protobuf,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Protobuf => protobuf::CONTENT_TYPE,
        }
    }

    /// Picks the format an HTTP `Accept` header prefers (by `q` weight; on a tie
    /// protobuf, then OpenMetrics). The text format is the default: for a missing
    /// or empty header, for one that names no format, for OpenMetrics versions
    /// other than 1.0.0, and for protobuf other than delimited `MetricFamily`
    /// messages. A media range whose weight is not one RFC 9110 allows (`q=1.5`,
    /// `q=.5`) counts as not sent, as `Accept-Encoding` reads it too.
    pub fn from_accept(accept: &str) -> Format {
        // The best so far, with its weight in thousandths.
        let mut best: Option<(Format, u32)> = None;
        for element in crate::negotiate::elements(accept) {
            let media = element.value;
            let version = element.param("version");
            let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                match version {
                    None | Some("1.0.0") => Format::OpenMetrics,
                    Some(_) => continue,
                }
            } else if media.eq_ignore_ascii_case("text/plain") {
                match version {
                    None | Some("0.0.4") => Format::Text,
                    Some(_) => continue,
                }
            } else if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
                match (element.param("proto"), element.param("encoding")) {
                    (Some("io.prometheus.client.MetricFamily"), Some("delimited")) => {
                        Format::Protobuf
                    }
                    _ => continue,
                }
            } else if media == "*/*" || media.eq_ignore_ascii_case("text/*") {
                Format::Text
            } else {
                continue;
            };
            let better = best.is_none_or(|(format_so_far, weight)| {
                element.weight > weight
                    || (element.weight == weight && format.rank() > format_so_far.rank())
            });
            if element.weight > 0 && better {
                best = Some((format, element.weight));
            }
        }
        best.map_or(Format::Text, |(format, _)| format)
    }

    /// Which format wins a tie of `q` weights: the one that carries the most.
    fn rank(self) -> u8 {
        match self {
            Format::Text => 0,
            Format::OpenMetrics => 1,
            Format::Protobuf => 2,
        }
    }
}

/// Samples yielded by a collector at scrape time: a registry's
/// `gauge_collector` or `counter_collector` is given one per scrape.
pub struct Samples<'a> {
    out: Writer<'a>,
    name: &'a str,
    label_names: &'a LabelNames,
    kind: MetricType,
}

impl Samples<'_> {
    /// Writes one sample: the label values (in the order of the label names) and
    /// the value. A wrong number of values is refused with [`Error::LabelCount`],
    /// and a counter value that is negative or NaN with [`Error::InvalidIncrement`];
    /// nothing is written then. A counter's value may be `+Inf` here, as the
    /// formats allow, while [`Counter::inc_by`] refuses an infinite increment:
    /// that would leave a live counter stuck at `+Inf` for good.
    pub fn push(&mut self, label_values: &[&str], value: f64) -> Result<(), Error> {
        self.label_names
            .check_count(self.name, label_values.len())?;
        if self.kind == MetricType::Counter && (value.is_nan() || value < 0.0) {
            return Err(Error::InvalidIncrement(value));
        }
        if self.kind == MetricType::Histogram {
            return Err(Error::WrongKind(self.name.to_owned()));
        }
        if self.out.protobuf {
            let (kind, names) = (self.kind, self.label_names);
            protobuf::collected_value(self.out.buf, kind, names, label_values, value);
            return Ok(());
        }
        self.out.buf.extend_from_slice(self.name.as_bytes());
        let labels = self.out.label_values(self.label_names, label_values);
        self.out.close_labels(&labels);
        self.out.value(value);
        Ok(())
    }

    /// Writes one histogram series (for a histogram collector): the label
    /// values, the buckets as `(upper bound, cumulative count)` for the finite
    /// bounds in increasing order, the total count (the `+Inf` bucket) and the
    /// sum. Bounds that are not finite and increasing, or counts that decrease or
    /// exceed the total, are refused with [`Error::InvalidBuckets`]; nothing is
    /// written then.
    pub fn push_histogram(
        &mut self,
        label_values: &[&str],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) -> Result<(), Error> {
        if self.kind != MetricType::Histogram {
            return Err(Error::WrongKind(self.name.to_owned()));
        }
        self.label_names
            .check_count(self.name, label_values.len())?;
        let mut previous: Option<(f64, u64)> = None;
        for &(bound, cumulative) in buckets {
            let in_order = previous.is_none_or(|(b, c)| bound > b && cumulative >= c);
            if !bound.is_finite() || !in_order || cumulative > count {
                return Err(Error::InvalidBuckets(format!(
                    "{}: bucket ({bound}, {cumulative}) out of order or above the count {count}",
                    self.name
                )));
            }
            previous = Some((bound, cumulative));
        }
        if self.out.protobuf {
            let names = self.label_names;
            protobuf::collected_histogram(self.out.buf, names, label_values, buckets, count, sum);
            return Ok(());
        }
        let series = HistogramLines {
            name: self.name,
            buckets: buckets.len() + 1,
            sum,
            negative: buckets.first().is_some_and(|&(b, _)| b < 0.0),
            created: None,
            exemplars: None,
        };
        let openmetrics = self.out.openmetrics;
        let names = self.label_names;
        self.out.histogram_series(
            &series,
            |out| out.label_values(names, label_values),
            |buf, i| match buckets.get(i) {
                Some(&(bound, _)) if openmetrics => write_canonical(buf, bound),
                Some(&(bound, _)) => write_float(buf, bound),
                None => buf.extend_from_slice(b"+Inf"),
            },
            |i| {
                let upto = |i: usize| buckets.get(i).map_or(count, |&(_, c)| c);
                upto(i) - if i == 0 { 0 } else { upto(i - 1) }
            },
        );
        Ok(())
    }
}

/// The state of one encoding: where to write, and in which format. The registry
/// walks its families and hands each to the method for its type.
pub(crate) struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    openmetrics: bool,
    /// Whether the format is protobuf ([`protobuf`] writes the families then).
    protobuf: bool,
    /// Whether counters and histograms get `_created` (OpenMetrics), or a
    /// created timestamp (protobuf).
    created: bool,
}

/// The signature of a collector's closure.
pub(crate) type CollectFn = dyn Fn(&mut Samples<'_>) + Send + Sync;

impl<'a> Writer<'a> {
    /// Starts an exposition in `format` at the end of `buf`.
    pub(crate) fn new(buf: &'a mut Vec<u8>, format: Format, created: bool) -> Writer<'a> {
        let openmetrics = format == Format::OpenMetrics;
        let protobuf = format == Format::Protobuf;
        Writer {
            buf,
            openmetrics,
            protobuf,
            created: created && (openmetrics || protobuf),
        }
    }

    /// Ends the exposition (OpenMetrics closes it with `# EOF`).
    pub(crate) fn finish(self) {
        if self.openmetrics {
            self.buf.extend_from_slice(b"# EOF\n");
        }
    }

    /// A family whose samples `collect` yields now.
    pub(crate) fn collector(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        unit: Option<&str>,
        label_names: &LabelNames,
        collect: &CollectFn,
    ) {
        let mark = if self.protobuf {
            Some(protobuf::family_start(self.buf, name, help, kind))
        } else {
            self.header(name, help, kind, unit);
            None
        };
        let mut samples = Samples {
            out: Writer {
                buf: self.buf,
                openmetrics: self.openmetrics,
                protobuf: self.protobuf,
                created: false,
            },
            name,
            label_names,
            kind,
        };
        collect(&mut samples);
        if let Some(mark) = mark {
            protobuf::family_end(self.buf, mark, unit);
        }
    }

    /// The `# TYPE`, `# HELP` and (OpenMetrics only) `# UNIT` lines. `name` is
    /// the text format's family name; OpenMetrics names a counter family without
    /// `_total` and an info family without `_info`.
    fn header(&mut self, name: &str, help: &str, kind: MetricType, unit: Option<&str>) {
        let name = if self.openmetrics {
            kind.family_name(name)
        } else {
            name
        };
        let openmetrics = self.openmetrics;
        let buf = &mut *self.buf;
        let type_line = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(b"# TYPE ");
            buf.extend_from_slice(name.as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(kind.as_str(openmetrics).as_bytes());
            buf.push(b'\n');
        };
        // OpenMetrics asks for TYPE before HELP; the text format's custom is HELP first.
        if openmetrics {
            type_line(buf);
        }
        if !help.is_empty() {
            buf.extend_from_slice(b"# HELP ");
            buf.extend_from_slice(name.as_bytes());
            buf.push(b' ');
            // The text format escapes only backslash and newline in HELP;
            // OpenMetrics escapes double quotes as well.
            escape(buf, help.as_bytes(), openmetrics);
            buf.push(b'\n');
        }
        if !openmetrics {
            type_line(buf);
        }
        if let (true, Some(unit)) = (openmetrics, unit) {
            buf.extend_from_slice(b"# UNIT ");
            buf.extend_from_slice(name.as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(unit.as_bytes());
            buf.push(b'\n');
        }
    }

    /// Writes `{name="value",...` for a series' joined label values (without the
    /// closing brace; nothing at all when there are no labels) and returns where
    /// it was written, so that the other lines of the series can copy it.
    ///
    /// One pass over the bytes: runs of plain bytes are copied whole, and each
    /// byte that needs escaping or separates two values is handled as it comes.
    fn joined_labels(&mut self, names: &LabelNames, joined: &[u8]) -> Range<usize> {
        let start = self.buf.len();
        let mut prefixes = names.prefixes.iter();
        let Some(first) = prefixes.next() else {
            // Only constant labels, if any: `{k="v"`.
            self.buf.extend_from_slice(&names.constant);
            return start..self.buf.len();
        };
        self.buf.extend_from_slice(first);
        let mut run = 0;
        for (i, &b) in joined.iter().enumerate() {
            let replacement: &[u8] = match BYTE_CLASS[usize::from(b)] {
                PLAIN => continue,
                NEXT_VALUE => prefixes.next().map_or(&[], |p| &p[..]),
                _ => escaped(b),
            };
            self.buf.extend_from_slice(&joined[run..i]);
            self.buf.extend_from_slice(replacement);
            run = i + 1;
        }
        self.buf.extend_from_slice(&joined[run..]);
        self.buf.push(b'"');
        start..self.buf.len()
    }

    /// Writes a label set given as separate values (from a collector); see
    /// [`Writer::joined_labels`].
    fn label_values(&mut self, names: &LabelNames, values: &[&str]) -> Range<usize> {
        let start = self.buf.len();
        if values.is_empty() {
            self.buf.extend_from_slice(&names.constant);
        }
        for (prefix, value) in names.prefixes.iter().zip(values) {
            self.buf.extend_from_slice(prefix);
            escape(self.buf, value.as_bytes(), true);
        }
        if !values.is_empty() {
            self.buf.push(b'"');
        }
        start..self.buf.len()
    }

    /// Closes a label set written by [`Writer::joined_labels`] or
    /// [`Writer::label_values`] (at `labels`) and adds the space
    /// before the value.
    fn close_labels(&mut self, labels: &Range<usize>) {
        self.buf
            .extend_from_slice(if labels.is_empty() { b" " } else { b"} " });
    }

    /// Writes `name` followed by a copy of the label set at `labels`.
    fn sample_start(&mut self, name: &str, suffix: &str, labels: &Range<usize>) {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(suffix.as_bytes());
        self.buf.extend_from_within(labels.clone());
    }

    fn value(&mut self, v: f64) {
        write_float(self.buf, v);
        self.buf.push(b'\n');
    }

    /// A time in milliseconds, written in seconds with up to three decimals.
    fn millis(&mut self, ms: u64) {
        write_millis(self.buf, ms);
        self.buf.push(b'\n');
    }

    /// Adds the exemplar in slot `i` to the line just written (OpenMetrics only):
    /// ` # {labels} value timestamp`.
    fn exemplar(&mut self, exemplars: &Exemplars, i: usize) {
        if !self.openmetrics {
            return;
        }
        let buf = &mut *self.buf;
        exemplars.read(i, |labels, value, millis| {
            buf.pop(); // the line's newline
            buf.extend_from_slice(b" # {");
            buf.extend_from_slice(labels);
            buf.extend_from_slice(b"} ");
            write_float(buf, value);
            buf.push(b' ');
            write_millis(buf, millis);
            buf.push(b'\n');
        });
    }

    fn count(&mut self, n: u64) {
        write_count(self.buf, n);
        self.buf.push(b'\n');
    }

    /// Writes the series' labels right after `name` and returns where they are.
    fn first_sample<M: Series>(
        &mut self,
        family: &FamilyCore<M>,
        name: &str,
        series: &M,
    ) -> Range<usize> {
        self.buf.extend_from_slice(name.as_bytes());
        self.joined_labels(&family.label_names, series.key().labels())
    }

    pub(crate) fn counters(&mut self, family: &FamilyCore<Counter>, unit: Option<&str>) {
        if self.protobuf {
            return self.protobuf_counters(family, unit);
        }
        self.header(&family.name, &family.help, MetricType::Counter, unit);
        let base = MetricType::Counter.family_name(&family.name);
        family.for_each(|counter| {
            let labels = self.first_sample(family, &family.name, counter);
            self.close_labels(&labels);
            let (whole, fraction) = counter.parts();
            if fraction == 0.0 {
                self.count(whole);
            } else {
                self.value(whole as f64 + fraction);
            }
            self.exemplar(counter.exemplar(), 0);
            if self.created {
                self.sample_start(base, "_created", &labels);
                self.close_labels(&labels);
                self.millis(counter.key().created_millis());
            }
        });
    }

    pub(crate) fn gauges(&mut self, family: &FamilyCore<Gauge>, unit: Option<&str>) {
        if self.protobuf {
            return self.protobuf_gauges(family, unit);
        }
        self.header(&family.name, &family.help, MetricType::Gauge, unit);
        family.for_each(|gauge| {
            let labels = self.first_sample(family, &family.name, gauge);
            self.close_labels(&labels);
            self.value(gauge.get());
        });
    }

    pub(crate) fn histograms(&mut self, family: &FamilyCore<Histogram>, unit: Option<&str>) {
        if self.protobuf {
            return self.protobuf_histograms(family, unit);
        }
        let name = &family.name;
        self.header(name, &family.help, MetricType::Histogram, unit);
        let le = if self.openmetrics {
            &family.config.le_openmetrics
        } else {
            &family.config.le_text
        };
        let openmetrics = self.openmetrics;
        family.for_each(|histogram| {
            let series = HistogramLines {
                name,
                buckets: le.len(),
                sum: histogram.sum(),
                negative: family.config.negative,
                created: Some(histogram.key().created_millis()),
                // Looked at once per series, not per bucket: only OpenMetrics
                // writes them, and most series never record one.
                exemplars: Some(histogram.exemplars()).filter(|e| openmetrics && !e.is_empty()),
            };
            self.histogram_series(
                &series,
                |out| out.joined_labels(&family.label_names, histogram.key().labels()),
                |buf, i| buf.extend_from_slice(le[i].as_bytes()),
                |i| histogram.bucket_count(i),
            );
        });
    }

    /// The lines of one histogram series: its buckets (`labels` writes the label
    /// set on the first line, the others copy it; `le` writes bucket `i`'s bound;
    /// `count` gives its own, not cumulative, count), then `_count`, `_sum` and
    /// `_created`. Families and collectors both write through here.
    fn histogram_series(
        &mut self,
        series: &HistogramLines<'_>,
        labels: impl FnOnce(&mut Self) -> Range<usize>,
        mut le: impl FnMut(&mut Vec<u8>, usize),
        mut count: impl FnMut(usize) -> u64,
    ) {
        let name = series.name;
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"_bucket");
        let labels = labels(self);
        // `_count` is the running total itself: it cannot differ from `+Inf`.
        let mut cumulative = 0u64;
        for i in 0..series.buckets {
            if i > 0 {
                self.sample_start(name, "_bucket", &labels);
            }
            self.buf.extend_from_slice(if labels.is_empty() {
                b"{le=\""
            } else {
                b",le=\""
            });
            le(self.buf, i);
            self.buf.extend_from_slice(b"\"} ");
            cumulative = cumulative.saturating_add(count(i));
            self.count(cumulative);
            if let Some(exemplars) = series.exemplars {
                self.exemplar(exemplars, i);
            }
        }
        // OpenMetrics treats `_sum` as a counter: it forbids it (and then
        // `_count`) with negative bounds, and a negative one cannot be written.
        if !self.openmetrics || !(series.negative || series.sum < 0.0) {
            self.sample_start(name, "_count", &labels);
            self.close_labels(&labels);
            self.count(cumulative);
            self.sample_start(name, "_sum", &labels);
            self.close_labels(&labels);
            self.value(series.sum);
        }
        if let (true, Some(created)) = (self.created, series.created) {
            self.sample_start(name, "_created", &labels);
            self.close_labels(&labels);
            self.millis(created);
        }
    }
}

/// Appends a time in milliseconds as seconds with up to three decimals.
fn write_millis(buf: &mut Vec<u8>, ms: u64) {
    write_uint(buf, ms / 1000);
    let fraction = ms % 1000;
    if fraction != 0 {
        let digits = [
            b'.',
            b'0' + (fraction / 100) as u8,
            b'0' + (fraction / 10 % 10) as u8,
            b'0' + (fraction % 10) as u8,
        ];
        let trailing_zeros = digits.iter().rev().take_while(|&&d| d == b'0').count();
        buf.extend_from_slice(&digits[..4 - trailing_zeros]);
    }
}

/// What the lines of one histogram series need besides its labels and buckets.
struct HistogramLines<'a> {
    name: &'a str,
    /// How many buckets, `+Inf` included.
    buckets: usize,
    sum: f64,
    /// Whether a bound is negative.
    negative: bool,
    created: Option<u64>,
    /// One per bucket, for a histogram family's series.
    exemplars: Option<&'a Exemplars>,
}
