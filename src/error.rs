//! The one error type of the crate.

use std::fmt;

/// Everything that can go wrong when metrics are declared or updated.
///
/// Every misuse that the Prometheus data model forbids comes back as one of
/// these values; nothing in the library panics on bad input.
///
/// ```
/// use promlite::{Error, Registry};
///
/// let registry = Registry::new();
/// let err = registry.counter("2fast", "Starts with a digit.").unwrap_err();
/// assert!(matches!(err, Error::InvalidMetricName(_)));
/// assert_eq!(err.to_string(), "invalid metric name \"2fast\": must match [a-zA-Z_:][a-zA-Z0-9_:]*");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidMetricName(String),
    /// The label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidLabelName(String),
    /// The label name is reserved: it starts with `__`, or it is `le` on a
    /// histogram or `quantile` on a histogram (both are written by the library).
    ReservedLabelName(String),
    /// The same label name appears twice in one family.
    DuplicateLabelName(String),
    /// A label set has a different number of values than the family has label names.
    LabelCount {
        /// The family.
        metric: String,
        /// How many label names the family declared.
        expected: usize,
        /// How many values were given.
        got: usize,
    },
    /// A family (or one of the sample names it writes) is already registered.
    AlreadyRegistered(String),
    /// The family already holds its maximum number of series; the new label set was refused.
    CardinalityLimit {
        /// The family.
        metric: String,
        /// Its limit on the number of series.
        limit: usize,
    },
    /// Histogram buckets must be finite and strictly increasing.
    InvalidBuckets(String),
    /// A counter only goes up: the increment was negative, NaN or infinite.
    InvalidIncrement(f64),
    /// A unit must be a valid name part, and the family's name must end with it
    /// (`_seconds` for `seconds`; before `_total` on a counter).
    InvalidUnit {
        /// The family.
        metric: String,
        /// The unit refused.
        unit: String,
    },
    /// No family is registered under this name.
    NotRegistered(String),
    /// A collector yielded a sample its family's type cannot hold (a single
    /// value for a histogram family, or a histogram for another type).
    WrongKind(String),
    /// An exemplar's labels are not valid names, repeat a name, or have more
    /// than 128 characters of names and values together.
    InvalidExemplar(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidMetricName(name) => write!(
                f,
                "invalid metric name {name:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
            ),
            Error::InvalidLabelName(name) => write!(
                f,
                "invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
            ),
            Error::ReservedLabelName(name) => write!(f, "label name {name:?} is reserved"),
            Error::DuplicateLabelName(name) => write!(f, "label name {name:?} is given twice"),
            Error::LabelCount {
                metric,
                expected,
                got,
            } => write!(f, "{metric}: expected {expected} label values, got {got}"),
            Error::AlreadyRegistered(name) => write!(f, "{name} is already registered"),
            Error::CardinalityLimit { metric, limit } => write!(
                f,
                "{metric}: series limit of {limit} reached, new label set refused"
            ),
            Error::InvalidBuckets(why) => write!(f, "invalid histogram buckets: {why}"),
            Error::InvalidIncrement(v) => write!(
                f,
                "counter increment {v} refused: must be finite and not negative"
            ),
            Error::InvalidUnit { metric, unit } => write!(
                f,
                "{metric}: unit {unit:?} refused: it must match [a-zA-Z0-9_]+ and the family name must end with _{unit}"
            ),
            Error::NotRegistered(name) => write!(f, "{name} is not registered"),
            Error::InvalidExemplar(why) => write!(f, "exemplar refused: {why}"),
            Error::WrongKind(name) => {
                write!(f, "{name}: the sample does not fit the family's type")
            }
        }
    }
}

impl std::error::Error for Error {}
