//! [`Registry`]: the metric families a scrape exposes.

use crate::Error;
use crate::encoding::{CollectFn, Format, Samples, Writer};
use crate::metrics::counter::Counter;
use crate::metrics::family::{Family, FamilyCore, Series};
use crate::metrics::gauge::Gauge;
use crate::metrics::histogram::{Buckets, Histogram};
use crate::metrics::key::LabelNames;
use crate::metrics::native::{NativeConfig, NativeHistogram, NativeLayout};
use crate::metrics::{MetricType, check_label_names, check_metric_name};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

/// A set of metric families, exposed together in registration order.
///
/// Most programs use the process-wide [`default_registry`]; libraries and tests
/// can make their own. Every registration checks the name, the label names and
/// that no sample name collides with one already registered.
///
/// ```
/// use promlite::{Format, Registry};
///
/// let registry = Registry::new();
/// let up = registry.gauge("up", "Whether the service is up.").unwrap();
/// up.set(1.0);
/// let mut buf = Vec::new();
/// promlite::encode(&registry, Format::Text, &mut buf);
/// assert_eq!(
///     String::from_utf8(buf).unwrap(),
///     "# HELP up Whether the service is up.\n# TYPE up gauge\nup 1\n"
/// );
/// assert!(registry.gauge("up", "Again.").is_err()); // already registered
/// ```
#[derive(Default)]
pub struct Registry {
    entries: RwLock<Vec<Registered>>,
    /// Whether OpenMetrics scrapes carry `_created` samples (off by default).
    created: AtomicBool,
}

/// One registered family, and its unit (OpenMetrics `# UNIT`).
struct Registered {
    entry: Entry,
    unit: Option<Box<str>>,
}

/// A registered family's metrics.
enum Entry {
    Counter(Arc<FamilyCore<Counter>>),
    Gauge(Arc<FamilyCore<Gauge>>),
    Histogram(Arc<FamilyCore<Histogram>>),
    NativeHistogram(Arc<FamilyCore<NativeHistogram>>),
    Collector(Arc<Collector>),
}

/// A family whose samples a closure yields at scrape time.
struct Collector {
    name: String,
    help: String,
    kind: MetricType,
    label_names: LabelNames,
    collect: Box<CollectFn>,
}

impl Entry {
    /// The name on the text format's `# TYPE` line.
    fn name(&self) -> &str {
        match self {
            Entry::Counter(f) => &f.name,
            Entry::Gauge(f) => &f.name,
            Entry::Histogram(f) => &f.name,
            Entry::NativeHistogram(f) => &f.name,
            Entry::Collector(c) => &c.name,
        }
    }

    fn kind(&self) -> MetricType {
        match self {
            Entry::Counter(_) => MetricType::Counter,
            Entry::Gauge(_) => MetricType::Gauge,
            Entry::Histogram(_) | Entry::NativeHistogram(_) => MetricType::Histogram,
            Entry::Collector(c) => c.kind,
        }
    }

    /// Whether `name` (for a counter, with or without `_total`) names this entry.
    fn is_named(&self, name: &str) -> bool {
        self.name() == exposed_name(self.kind(), name)
    }
}

/// The name a family is exposed under: counters always end in `_total` and info
/// families in `_info` (added when missing, never doubled); other types keep the
/// name they were given.
fn exposed_name(kind: MetricType, name: &str) -> String {
    let suffix = kind.sample_suffix();
    if name.ends_with(suffix) {
        name.to_owned()
    } else {
        format!("{name}{suffix}")
    }
}

/// Every name a family occupies in either format: its family names and the
/// names of all the samples it writes. Two families may not share one.
fn claimed_names(kind: MetricType, exposed: &str) -> Vec<String> {
    let base = kind.family_name(exposed);
    match kind {
        MetricType::Counter => vec![
            base.to_owned(),
            exposed.to_owned(),
            format!("{base}_created"),
        ],
        MetricType::Info => vec![base.to_owned(), exposed.to_owned()],
        MetricType::Gauge => vec![exposed.to_owned()],
        MetricType::Histogram => ["", "_bucket", "_count", "_sum", "_created"]
            .iter()
            .map(|suffix| format!("{exposed}{suffix}"))
            .collect(),
    }
}

/// Appends the registry's exposition in `format` to `buf`.
pub fn encode(registry: &Registry, format: Format, buf: &mut Vec<u8>) {
    let mut out = Writer::new(buf, format, registry.created.load(Relaxed));
    let entries = registry
        .entries
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    for Registered { entry, unit } in entries.iter() {
        let unit = unit.as_deref();
        match entry {
            Entry::Counter(f) => out.counters(f, unit),
            Entry::Gauge(f) => out.gauges(f, unit),
            Entry::Histogram(f) => out.histograms(f, unit),
            Entry::NativeHistogram(f) => out.native_histograms(f, unit),
            Entry::Collector(c) => {
                out.collector(&c.name, &c.help, c.kind, unit, &c.label_names, &*c.collect)
            }
        }
    }
    out.finish();
}

/// Appends the registry's exposition in the Prometheus text format 0.0.4.
pub fn encode_text(registry: &Registry, buf: &mut Vec<u8>) {
    encode(registry, Format::Text, buf);
}

/// Appends the registry's exposition in OpenMetrics 1.0.0.
pub fn encode_openmetrics(registry: &Registry, buf: &mut Vec<u8>) {
    encode(registry, Format::OpenMetrics, buf);
}

/// Writes the registry's exposition in `format` to any writer (encoded into a
/// buffer first, then written with one `write_all`).
pub fn write_to(registry: &Registry, format: Format, mut w: impl io::Write) -> io::Result<()> {
    let mut buf = Vec::new();
    encode(registry, format, &mut buf);
    w.write_all(&buf)
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Whether OpenMetrics scrapes carry a `_created` sample for every counter
    /// and histogram series (the time it was created). Off by default:
    /// Prometheus stores each `_created` line as a series of its own, a twin of
    /// every counter and histogram series. The text format never has them.
    ///
    /// ```
    /// use promlite::{Format, Registry};
    ///
    /// let registry = Registry::new();
    /// registry.counter("jobs_total", "Jobs.").unwrap().inc();
    /// let scrape = |r: &Registry| {
    ///     let mut buf = Vec::new();
    ///     promlite::encode(r, Format::OpenMetrics, &mut buf);
    ///     String::from_utf8(buf).unwrap()
    /// };
    /// assert!(!scrape(&registry).contains("jobs_created"));
    /// registry.set_created_samples(true);
    /// assert!(scrape(&registry).contains("\njobs_created "));
    /// ```
    pub fn set_created_samples(&self, on: bool) {
        self.created.store(on, Relaxed);
    }

    /// Registers a counter without labels. A missing `_total` suffix is added
    /// to the exposed name.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, Error> {
        self.counter_family(name, help, &[])?.with_labels(&[])
    }

    /// Registers a counter family with these label names.
    pub fn counter_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<Family<Counter>, Error> {
        self.root().counter_family(name, help, label_names)
    }

    /// Registers a gauge without labels.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, Error> {
        self.gauge_family(name, help, &[])?.with_labels(&[])
    }

    /// Registers a gauge family with these label names.
    pub fn gauge_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<Family<Gauge>, Error> {
        self.root().gauge_family(name, help, label_names)
    }

    /// Registers a histogram without labels, with these bucket upper bounds
    /// (finite, strictly increasing; `+Inf` is implicit). See [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS),
    /// [`linear_buckets`](crate::linear_buckets) and [`exponential_buckets`](crate::exponential_buckets).
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, Error> {
        self.histogram_family(name, help, &[], buckets)?
            .with_labels(&[])
    }

    /// Registers a histogram family with these label names and bucket upper bounds.
    pub fn histogram_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: &[f64],
    ) -> Result<Family<Histogram>, Error> {
        self.root()
            .histogram_family(name, help, label_names, buckets)
    }

    /// Registers a native histogram without labels: exponential buckets at
    /// the resolution `config` gives, which the protobuf format exposes (and
    /// Prometheus scrapes with `--enable-feature=native-histograms`), with
    /// classic buckets as well if `config` has any. The text formats write only
    /// the classic buckets, or, for a histogram without any, its count and sum.
    ///
    /// ```
    /// use promlite::{Format, NativeConfig, Registry};
    ///
    /// let registry = Registry::new();
    /// let latency = registry
    ///     .native_histogram("rpc_seconds", "RPC latency.", &NativeConfig::default())
    ///     .unwrap();
    /// latency.observe(0.5);
    /// let mut text = Vec::new();
    /// promlite::encode(&registry, Format::Text, &mut text);
    /// assert_eq!(
    ///     String::from_utf8(text).unwrap(),
    ///     "# HELP rpc_seconds RPC latency.\n# TYPE rpc_seconds histogram\nrpc_seconds_count 1\nrpc_seconds_sum 0.5\n"
    /// );
    /// let bad = NativeConfig { schema: 9, ..NativeConfig::default() };
    /// assert!(registry.native_histogram("other_seconds", "", &bad).is_err());
    /// ```
    pub fn native_histogram(
        &self,
        name: &str,
        help: &str,
        config: &NativeConfig,
    ) -> Result<NativeHistogram, Error> {
        self.native_histogram_family(name, help, &[], config)?
            .with_labels(&[])
    }

    /// Registers a native histogram family with these label names; see
    /// [`Registry::native_histogram`].
    pub fn native_histogram_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        config: &NativeConfig,
    ) -> Result<Family<NativeHistogram>, Error> {
        self.root()
            .native_histogram_family(name, help, label_names, config)
    }

    /// The registry itself as a view without prefix or constant labels.
    fn root(&self) -> SubRegistry<'_> {
        SubRegistry {
            registry: self,
            scope: Scope::default(),
        }
    }

    /// Registers a gauge family whose samples `collect` yields at every scrape,
    /// for values that live elsewhere. The closure pushes label values and a value
    /// into the [`Samples`] it is given. It runs while the registry is locked for
    /// the scrape: it must not register or unregister in the same registry (that
    /// would wait for the scrape to end, for ever).
    ///
    /// ```
    /// let registry = promlite::Registry::new();
    /// registry
    ///     .gauge_collector("queue_length", "Jobs waiting.", &["queue"], |samples| {
    ///         samples.push(&["fast"], 3.0).unwrap();
    ///         samples.push(&["slow"], 12.0).unwrap();
    ///     })
    ///     .unwrap();
    /// let mut buf = Vec::new();
    /// promlite::encode_text(&registry, &mut buf);
    /// assert!(String::from_utf8(buf).unwrap().contains("queue_length{queue=\"slow\"} 12\n"));
    /// ```
    pub fn gauge_collector<F>(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        collect: F,
    ) -> Result<(), Error>
    where
        F: Fn(&mut Samples<'_>) + Send + Sync + 'static,
    {
        self.add_collector(
            MetricType::Gauge,
            name,
            help,
            LabelNames::new(label_names),
            Box::new(collect),
        )
    }

    /// Registers a counter family whose samples `collect` yields at every scrape
    /// (a negative or NaN value is refused by [`Samples::push`]).
    pub fn counter_collector<F>(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        collect: F,
    ) -> Result<(), Error>
    where
        F: Fn(&mut Samples<'_>) + Send + Sync + 'static,
    {
        self.add_collector(
            MetricType::Counter,
            name,
            help,
            LabelNames::new(label_names),
            Box::new(collect),
        )
    }

    /// Registers a histogram family whose series `collect` yields at every scrape
    /// with [`Samples::push_histogram`], for distributions counted elsewhere.
    ///
    /// ```
    /// use promlite::{Format, Registry};
    ///
    /// let registry = Registry::new();
    /// registry
    ///     .histogram_collector("queue_wait_seconds", "Waits.", &["queue"], |s| {
    ///         // 3 waits up to 1 s, 5 up to 2 s, 6 in all, summing to 7.5 s.
    ///         s.push_histogram(&["fast"], &[(1.0, 3), (2.0, 5)], 6, 7.5).unwrap();
    ///     })
    ///     .unwrap();
    /// let mut buf = Vec::new();
    /// promlite::encode(&registry, Format::Text, &mut buf);
    /// let text = String::from_utf8(buf).unwrap();
    /// assert!(text.contains("queue_wait_seconds_bucket{queue=\"fast\",le=\"2\"} 5\n"));
    /// assert!(text.contains("queue_wait_seconds_bucket{queue=\"fast\",le=\"+Inf\"} 6\n"));
    /// assert!(text.contains("queue_wait_seconds_sum{queue=\"fast\"} 7.5\n"));
    /// ```
    pub fn histogram_collector<F>(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        collect: F,
    ) -> Result<(), Error>
    where
        F: Fn(&mut Samples<'_>) + Send + Sync + 'static,
    {
        self.add_collector(
            MetricType::Histogram,
            name,
            help,
            LabelNames::new(label_names),
            Box::new(collect),
        )
    }

    /// Registers a gauge without labels whose value `value` returns at scrape time.
    pub fn gauge_fn<F>(&self, name: &str, help: &str, value: F) -> Result<(), Error>
    where
        F: Fn() -> f64 + Send + Sync + 'static,
    {
        self.value_fn(MetricType::Gauge, name, help, value)
    }

    /// Registers a counter without labels whose value `value` returns at scrape
    /// time (a negative or NaN value is left out of the scrape).
    pub fn counter_fn<F>(&self, name: &str, help: &str, value: F) -> Result<(), Error>
    where
        F: Fn() -> f64 + Send + Sync + 'static,
    {
        self.value_fn(MetricType::Counter, name, help, value)
    }

    /// A collector of one sample without labels.
    fn value_fn<F>(&self, kind: MetricType, name: &str, help: &str, value: F) -> Result<(), Error>
    where
        F: Fn() -> f64 + Send + Sync + 'static,
    {
        let collect = move |s: &mut Samples<'_>| {
            let _ = s.push(&[], value());
        };
        self.add_collector(kind, name, help, LabelNames::new(&[]), Box::new(collect))
    }

    /// Registers an info family: facts about the target (a version, a build)
    /// as labels on one sample of value 1. OpenMetrics writes it with the type
    /// `info`; the text format, which has no such type, as a gauge. A missing
    /// `_info` suffix is added to the name.
    ///
    /// ```
    /// use promlite::{Format, Registry};
    ///
    /// let registry = Registry::new();
    /// registry.info("slpocapp_build", "The running build.", &[("version", "0.1.0")]).unwrap();
    /// let mut text = Vec::new();
    /// promlite::encode(&registry, Format::Text, &mut text);
    /// assert!(String::from_utf8(text).unwrap().ends_with(
    ///     "# TYPE slpocapp_build_info gauge\nslpocapp_build_info{version=\"0.1.0\"} 1\n"
    /// ));
    /// let mut om = Vec::new();
    /// promlite::encode(&registry, Format::OpenMetrics, &mut om);
    /// assert!(String::from_utf8(om).unwrap().starts_with("# TYPE slpocapp_build info\n"));
    /// ```
    pub fn info(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<(), Error> {
        // The labels are constant: written once here, copied at each scrape.
        let collect = |s: &mut Samples<'_>| {
            let _ = s.push(&[], 1.0);
        };
        let labels = LabelNames::with_constants(labels, &[]);
        self.add_collector(MetricType::Info, name, help, labels, Box::new(collect))
    }

    /// Gives the family registered under `name` a unit, written on an
    /// OpenMetrics `# UNIT` line (the text format has none). As OpenMetrics
    /// requires, the family's name must end with `_` and the unit (a counter's
    /// before `_total`): `request_duration_seconds` has the unit `seconds`.
    ///
    /// ```
    /// use promlite::{Error, Registry};
    ///
    /// let registry = Registry::new();
    /// registry.counter("sent_bytes_total", "Bytes sent.").unwrap();
    /// registry.set_unit("sent_bytes_total", "bytes").unwrap();
    /// assert!(matches!(registry.set_unit("sent_bytes_total", "seconds"), Err(Error::InvalidUnit { .. })));
    /// assert!(matches!(registry.set_unit("missing", "bytes"), Err(Error::NotRegistered(_))));
    /// ```
    pub fn set_unit(&self, name: &str, unit: &str) -> Result<(), Error> {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let registered = entries
            .iter_mut()
            .find(|r| r.entry.is_named(name))
            .ok_or_else(|| Error::NotRegistered(name.to_owned()))?;
        let kind = registered.entry.kind();
        let exposed = registered.entry.name();
        let family = kind.family_name(exposed);
        let valid = !unit.is_empty()
            && unit.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && family
                .strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_') && rest.len() > 1);
        if !valid || kind == MetricType::Info {
            return Err(Error::InvalidUnit {
                metric: exposed.to_owned(),
                unit: unit.to_owned(),
            });
        }
        registered.unit = Some(unit.into());
        Ok(())
    }

    /// Removes the family registered under `name` (for a counter, with or without
    /// `_total`); returns whether there was one. Handles to it keep working but
    /// are no longer exposed.
    pub fn unregister(&self, name: &str) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|r| !r.entry.is_named(name));
        entries.len() != before
    }

    /// How many families are registered.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no family is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a collector; `label_names` may be given as constant labels
    /// instead, which every sample then carries (an info family's).
    fn add_collector(
        &self,
        kind: MetricType,
        name: &str,
        help: &str,
        label_names: LabelNames,
        collect: Box<CollectFn>,
    ) -> Result<(), Error> {
        self.register(kind, name, label_names, |exposed, label_names| {
            Entry::Collector(Arc::new(Collector {
                name: exposed,
                help: help.to_owned(),
                kind,
                label_names,
                collect,
            }))
        })
    }

    /// Validates, checks for clashes, and adds the entry `make` builds from the
    /// exposed name and the label names (its constant ones included), which it
    /// is handed back.
    fn register(
        &self,
        kind: MetricType,
        name: &str,
        label_names: LabelNames,
        make: impl FnOnce(String, LabelNames) -> Entry,
    ) -> Result<(), Error> {
        check_metric_name(name)?;
        check_label_names(kind, &label_names.names())?;
        if !kind.sample_suffix().is_empty() && name == kind.sample_suffix() {
            // Its OpenMetrics family name would be empty.
            return Err(Error::InvalidMetricName(name.to_owned()));
        }
        let exposed = exposed_name(kind, name);
        let claims = claimed_names(kind, &exposed);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        for Registered { entry, .. } in entries.iter() {
            let theirs = claimed_names(entry.kind(), entry.name());
            if let Some(clash) = claims.iter().find(|c| theirs.contains(c)) {
                return Err(Error::AlreadyRegistered(clash.clone()));
            }
        }
        entries.push(Registered {
            entry: make(exposed, label_names),
            unit: None,
        });
        Ok(())
    }

    /// A view of this registry whose families are named `prefix_<name>` and
    /// carry the constant labels `labels` before their own. The prefix must be a
    /// valid metric name, the label names valid and distinct; a family that
    /// declares one of them itself is refused ([`Error::DuplicateLabelName`]).
    ///
    /// ```
    /// use promlite::{Format, Registry};
    ///
    /// let registry = Registry::new();
    /// let cache = registry.sub_registry("cache", &[("tier", "l1")]).unwrap();
    /// let hits = cache.counter_family("hits_total", "Cache hits.", &["kind"]).unwrap();
    /// hits.inc(&["get"]).unwrap();
    /// cache.gauge("entries", "Entries held.").unwrap().set(3.0);
    /// let mut buf = Vec::new();
    /// promlite::encode(&registry, Format::Text, &mut buf);
    /// let text = String::from_utf8(buf).unwrap();
    /// assert!(text.contains("cache_hits_total{tier=\"l1\",kind=\"get\"} 1\n"));
    /// assert!(text.contains("cache_entries{tier=\"l1\"} 3\n"));
    /// assert!(cache.counter_family("misses_total", "", &["tier"]).is_err());
    /// ```
    pub fn sub_registry(
        &self,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> Result<SubRegistry<'_>, Error> {
        Scope::default()
            .nested(prefix, labels)
            .map(|scope| SubRegistry {
                registry: self,
                scope,
            })
    }
}

/// Where a family is registered: a name prefix and constant labels.
#[derive(Debug, Default, Clone)]
struct Scope {
    prefix: String,
    constants: Vec<(String, String)>,
}

impl Scope {
    fn name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix)
        }
    }

    fn nested(&self, prefix: &str, labels: &[(&str, &str)]) -> Result<Scope, Error> {
        let prefix = self.name(prefix);
        check_metric_name(&prefix)?;
        let mut constants = self.constants.clone();
        constants.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let names: Vec<&str> = constants.iter().map(|(k, _)| k.as_str()).collect();
        check_label_names(MetricType::Gauge, &names)?;
        Ok(Scope { prefix, constants })
    }
}

/// A registry's view with a name prefix and constant labels; see
/// [`Registry::sub_registry`]. Its families are the registry's own, exposed
/// with the registry's, and may be nested further.
#[derive(Debug, Clone)]
pub struct SubRegistry<'r> {
    registry: &'r Registry,
    scope: Scope,
}

impl<'r> SubRegistry<'r> {
    /// A further prefix (joined with `_`) and more constant labels.
    pub fn sub_registry(
        &self,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> Result<SubRegistry<'r>, Error> {
        self.scope.nested(prefix, labels).map(|scope| SubRegistry {
            registry: self.registry,
            scope,
        })
    }

    /// As [`Registry::counter`], with the prefix and the constant labels.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, Error> {
        self.counter_family(name, help, &[])?.with_labels(&[])
    }

    /// As [`Registry::counter_family`], with the prefix and the constant labels.
    pub fn counter_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<Family<Counter>, Error> {
        self.add_family(
            MetricType::Counter,
            name,
            help,
            label_names,
            (),
            Entry::Counter,
        )
    }

    /// As [`Registry::gauge`], with the prefix and the constant labels.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, Error> {
        self.gauge_family(name, help, &[])?.with_labels(&[])
    }

    /// As [`Registry::gauge_family`], with the prefix and the constant labels.
    pub fn gauge_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<Family<Gauge>, Error> {
        self.add_family(MetricType::Gauge, name, help, label_names, (), Entry::Gauge)
    }

    /// As [`Registry::histogram`], with the prefix and the constant labels.
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, Error> {
        self.histogram_family(name, help, &[], buckets)?
            .with_labels(&[])
    }

    /// As [`Registry::histogram_family`], with the prefix and the constant labels.
    pub fn histogram_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: &[f64],
    ) -> Result<Family<Histogram>, Error> {
        let buckets = Buckets::new(buckets)?;
        self.add_family(
            MetricType::Histogram,
            name,
            help,
            label_names,
            buckets,
            Entry::Histogram,
        )
    }

    /// As [`Registry::native_histogram`], with the prefix and the constant labels.
    pub fn native_histogram(
        &self,
        name: &str,
        help: &str,
        config: &NativeConfig,
    ) -> Result<NativeHistogram, Error> {
        self.native_histogram_family(name, help, &[], config)?
            .with_labels(&[])
    }

    /// As [`Registry::native_histogram_family`], with the prefix and the constant labels.
    pub fn native_histogram_family(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        config: &NativeConfig,
    ) -> Result<Family<NativeHistogram>, Error> {
        let layout = NativeLayout::new(config)?;
        self.add_family(
            MetricType::Histogram,
            name,
            help,
            label_names,
            layout,
            Entry::NativeHistogram,
        )
    }

    fn add_family<M: Series>(
        &self,
        kind: MetricType,
        name: &str,
        help: &str,
        label_names: &[&str],
        config: M::Config,
        wrap: fn(Arc<FamilyCore<M>>) -> Entry,
    ) -> Result<Family<M>, Error> {
        let scope = &self.scope;
        let name = scope.name(name);
        let constants: Vec<(&str, &str)> = scope
            .constants
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let names = LabelNames::with_constants(&constants, label_names);
        let mut family = None;
        self.registry
            .register(kind, &name, names, |exposed, names| {
                let f = Family::from_core(FamilyCore::new(exposed, help.to_owned(), names, config));
                let entry = wrap(Arc::clone(&f.core));
                family = Some(f);
                entry
            })?;
        family.ok_or(Error::AlreadyRegistered(name))
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_list()
            .entries(entries.iter().map(|r| r.entry.name()))
            .finish()
    }
}

static DEFAULT: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process-wide registry, for programs that need only one.
///
/// ```
/// let hits = promlite::default_registry()
///     .counter("doc_example_hits_total", "Hits.")
///     .unwrap();
/// hits.inc();
/// ```
pub fn default_registry() -> &'static Registry {
    &DEFAULT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_get_total_once() {
        let r = Registry::new();
        r.counter("a", "").unwrap();
        r.counter("b_total", "").unwrap();
        let names: Vec<String> = r
            .entries
            .read()
            .unwrap()
            .iter()
            .map(|r| r.entry.name().to_owned())
            .collect();
        assert_eq!(names, ["a_total", "b_total"]);
    }

    #[test]
    fn clashing_names_are_refused() {
        let r = Registry::new();
        r.counter("requests_total", "").unwrap();
        for (kind, name) in [
            (MetricType::Counter, "requests_total"),
            (MetricType::Counter, "requests"), // the same exposed name
            (MetricType::Gauge, "requests_total"),
            (MetricType::Gauge, "requests"), // the OpenMetrics family name
            (MetricType::Gauge, "requests_created"),
        ] {
            let err = r
                .register(kind, name, LabelNames::new(&[]), |_, _| unreachable!())
                .unwrap_err();
            assert!(matches!(err, Error::AlreadyRegistered(_)), "{name}");
        }
        r.histogram("latency_seconds", "", &[1.0]).unwrap();
        for name in [
            "latency_seconds_count",
            "latency_seconds_bucket",
            "latency_seconds_sum",
        ] {
            assert!(
                matches!(r.gauge(name, ""), Err(Error::AlreadyRegistered(_))),
                "{name}"
            );
        }
        assert!(matches!(
            r.counter("latency_seconds_count", ""),
            Err(Error::AlreadyRegistered(_))
        ));
        // Names that only share a prefix are fine.
        r.gauge("requests_in_flight", "").unwrap();
        r.gauge("latency", "").unwrap();
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn every_kind_of_bad_declaration_is_an_error() {
        let r = Registry::new();
        assert!(matches!(
            r.counter("bad name", ""),
            Err(Error::InvalidMetricName(_))
        ));
        assert!(matches!(
            r.counter("_total", ""),
            Err(Error::InvalidMetricName(_))
        ));
        assert!(matches!(
            r.gauge_family("g", "", &["bad-label"]),
            Err(Error::InvalidLabelName(_))
        ));
        assert!(matches!(
            r.gauge_family("g", "", &["__reserved"]),
            Err(Error::ReservedLabelName(_))
        ));
        assert!(matches!(
            r.histogram_family("h", "", &["le"], &[1.0]),
            Err(Error::ReservedLabelName(_))
        ));
        assert!(matches!(
            r.histogram_family("h", "", &["quantile"], &[1.0]),
            Err(Error::ReservedLabelName(_))
        ));
        assert!(matches!(
            r.histogram("h", "", &[2.0, 1.0]),
            Err(Error::InvalidBuckets(_))
        ));
        assert!(matches!(
            r.counter_family("c", "", &["a", "a"]),
            Err(Error::DuplicateLabelName(_))
        ));
        assert!(r.is_empty(), "nothing half-registered");
    }

    #[test]
    fn unregister_frees_the_name() {
        let r = Registry::new();
        let c = r.counter("jobs_total", "").unwrap();
        assert!(r.unregister("jobs"));
        assert!(!r.unregister("jobs_total"));
        c.inc(); // the handle still works
        r.gauge("jobs_total", "").unwrap();
        assert!(r.unregister("jobs_total"));
        assert!(r.is_empty());
    }

    #[test]
    fn default_registry_is_one_registry() {
        default_registry()
            .gauge("registry_test_default", "")
            .unwrap();
        assert!(
            default_registry()
                .gauge("registry_test_default", "")
                .is_err()
        );
        assert!(default_registry().unregister("registry_test_default"));
    }

    #[test]
    fn a_collector_s_bad_histograms_and_wrong_kinds_are_refused_and_write_nothing() {
        let r = Registry::new();
        let results = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&results);
        r.histogram_collector("waits_seconds", "", &["q"], move |s| {
            let mut seen = seen.lock().unwrap();
            seen.push(s.push_histogram(&["a"], &[(2.0, 1), (1.0, 1)], 1, 1.0));
            seen.push(s.push_histogram(&["a"], &[(1.0, 3), (2.0, 2)], 3, 1.0));
            seen.push(s.push_histogram(&["a"], &[(1.0, 3)], 2, 1.0));
            seen.push(s.push_histogram(&["a"], &[(f64::INFINITY, 1)], 1, 1.0));
            seen.push(s.push_histogram(&[], &[(1.0, 1)], 1, 1.0));
            seen.push(s.push(&["a"], 1.0));
        })
        .unwrap();
        let gauge_results = Arc::new(std::sync::Mutex::new(None));
        let gauge_seen = Arc::clone(&gauge_results);
        r.gauge_collector("depth", "", &[], move |s| {
            *gauge_seen.lock().unwrap() = Some(s.push_histogram(&[], &[], 0, 0.0));
        })
        .unwrap();
        let mut buf = Vec::new();
        encode(&r, Format::Text, &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "# TYPE waits_seconds histogram\n# TYPE depth gauge\n"
        );
        let results = results.lock().unwrap();
        assert!(matches!(results[0], Err(Error::InvalidBuckets(_))));
        assert!(matches!(results[1], Err(Error::InvalidBuckets(_))));
        assert!(matches!(results[2], Err(Error::InvalidBuckets(_))));
        assert!(matches!(results[3], Err(Error::InvalidBuckets(_))));
        assert!(matches!(results[4], Err(Error::LabelCount { .. })));
        assert!(matches!(results[5], Err(Error::WrongKind(_))));
        assert!(matches!(
            *gauge_results.lock().unwrap(),
            Some(Err(Error::WrongKind(_)))
        ));
    }

    #[test]
    fn units_must_end_the_name_and_info_names_get_their_suffix_once() {
        let r = Registry::new();
        r.histogram("wait_seconds", "", &[1.0]).unwrap();
        r.counter("sent_bytes", "").unwrap();
        r.info("build", "", &[("version", "1")]).unwrap();
        r.set_unit("wait_seconds", "seconds").unwrap();
        r.set_unit("sent_bytes", "bytes").unwrap();
        for (name, unit) in [
            ("wait_seconds", "second"),
            ("wait_seconds", "wait_seconds"),
            ("wait_seconds", ""),
            ("wait_seconds", "sec-onds"),
            ("build_info", "info"),
        ] {
            assert!(
                matches!(r.set_unit(name, unit), Err(Error::InvalidUnit { .. })),
                "{name} {unit}"
            );
        }
        assert!(
            r.info("build_info", "", &[]).is_err(),
            "the same family twice"
        );
        assert!(
            r.gauge("build", "").is_err(),
            "the info family's name is taken"
        );
        let mut buf = Vec::new();
        encode(&r, Format::OpenMetrics, &mut buf);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("# UNIT wait_seconds seconds\n"), "{text}");
        assert!(
            text.contains("# TYPE sent_bytes counter\n# UNIT sent_bytes bytes\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE build info\nbuild_info{version=\"1\"} 1\n"),
            "{text}"
        );
        let mut buf = Vec::new();
        encode(&r, Format::Text, &mut buf);
        assert!(!String::from_utf8(buf).unwrap().contains("UNIT"));
    }
}
