//! # promlite
//!
//! Prometheus metrics for Rust services, small and fast: counters, gauges,
//! classic and native histograms on lock-free atomics, label families with a
//! cardinality limit, and the exposition formats (Prometheus text 0.0.4,
//! OpenMetrics 1.0.0 and the protobuf format) written by hand into a buffer you
//! own.
//!
//! ```
//! use promlite::{Format, Registry};
//!
//! let registry = Registry::new();
//! let requests = registry.counter_family(
//!     "slpocapp_request_operations_total",
//!     "The total number of processed requests",
//!     &["namespace", "pod"],
//! )?;
//! let duration = registry.histogram_family(
//!     "slpocapp_request_duration_seconds",
//!     "Histogram for the duration in seconds.",
//!     &["namespace", "pod"],
//!     &[1.0, 2.0, 5.0, 6.0, 10.0],
//! )?;
//!
//! // Look the series up once, keep the handles: the hot path is one atomic.
//! let requests = requests.with_labels(&["default", "laptop-jaime"])?;
//! let duration = duration.with_labels(&["default", "laptop-jaime"])?;
//! requests.inc();
//! duration.observe(0.0012);
//!
//! let mut buf = Vec::new();
//! promlite::encode(&registry, Format::Text, &mut buf);
//! let text = String::from_utf8(buf).unwrap();
//! assert!(text.contains(
//!     "slpocapp_request_operations_total{namespace=\"default\",pod=\"laptop-jaime\"} 1\n"
//! ));
//! # Ok::<(), promlite::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod encoding;
mod error;
mod gzip;
mod metrics;
mod negotiate;
mod number;
mod process;
mod registry;
#[cfg(unix)]
mod server;
#[cfg(feature = "tiny_http")]
mod tiny;

pub use encoding::{Format, Samples};
pub use error::Error;
pub use gzip::{Gzip, gzip};
pub use metrics::counter::Counter;
pub use metrics::exemplar::EXEMPLAR_LABELS_MAX_CHARS;
pub use metrics::family::{DEFAULT_SERIES_LIMIT, Family, Series};
pub use metrics::gauge::Gauge;
pub use metrics::histogram::{DEFAULT_BUCKETS, Histogram, exponential_buckets, linear_buckets};
pub use metrics::native::{
    DEFAULT_NATIVE_MAX_BUCKETS, DEFAULT_NATIVE_ZERO_THRESHOLD, NativeConfig, NativeHistogram,
};
pub use metrics::timer::{HistogramTimer, NativeHistogramTimer, Observe};
pub use registry::{
    Registry, SubRegistry, default_registry, encode, encode_openmetrics, encode_text, write_to,
};
#[cfg(unix)]
pub use server::{Answer, Exporter, Method, Request, Running, Stopped};
#[cfg(feature = "tiny_http")]
pub use tiny::respond_metrics;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
