//! What identifies a series: its label values joined in one key, and a family's
//! label names with the text that starts each label pre-rendered.
//!
//! Label values are joined by the byte 0xFF, which never occurs in UTF-8, so
//! `{a="ab",b="c"}` and `{a="a",b="bc"}` are different keys.

use crate::Error;

/// The byte between label values in a series key.
pub(crate) const SEPARATOR: u8 = 0xFF;

/// What identifies a series, in one allocation: the time it was created (6 bytes,
/// milliseconds since the Unix epoch, enough until the year 10889), then its label
/// values joined by 0xFF. Keeping the creation time here rather than in a field
/// of its own saves the padding it would cost (about 10 bytes per series).
#[derive(Debug)]
pub struct SeriesKey(Box<[u8]>);

const CREATED_BYTES: usize = 6;

impl SeriesKey {
    pub(crate) fn new(values: &[&str], created_millis: u64) -> SeriesKey {
        let len = values
            .iter()
            .map(|v| v.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        let mut key = Vec::with_capacity(CREATED_BYTES + len);
        key.extend_from_slice(&created_millis.to_le_bytes()[..CREATED_BYTES]);
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                key.push(SEPARATOR);
            }
            key.extend_from_slice(v.as_bytes());
        }
        SeriesKey(key.into_boxed_slice())
    }

    /// The label values, joined by 0xFF.
    #[inline]
    pub(crate) fn labels(&self) -> &[u8] {
        &self.0[CREATED_BYTES..]
    }

    /// When the series was created, in milliseconds since the Unix epoch.
    pub(crate) fn created_millis(&self) -> u64 {
        let mut bytes = [0u8; 8];
        bytes[..CREATED_BYTES].copy_from_slice(&self.0[..CREATED_BYTES]);
        u64::from_le_bytes(bytes)
    }
}

/// Splits joined label values back into `count` values.
pub(crate) fn split_labels(labels: &[u8], count: usize) -> impl Iterator<Item = &[u8]> {
    labels.split(|&b| b == SEPARATOR).take(count)
}

/// Whether a stored key holds exactly these values.
#[inline]
pub(crate) fn key_matches(key: &[u8], values: &[&str]) -> bool {
    let mut rest = key;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            match rest.split_first() {
                Some((&SEPARATOR, tail)) => rest = tail,
                _ => return false,
            }
        }
        let v = v.as_bytes();
        if rest.len() < v.len() || !same_bytes(&rest[..v.len()], v) {
            return false;
        }
        rest = &rest[v.len()..];
    }
    rest.is_empty()
}

/// `a == b` for slices of the same length, inlined: label values are short, and a
/// call to `memcmp` per value cost a third of a lookup.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if read_u64(&a[i..]) != read_u64(&b[i..]) {
                return false;
            }
            i += 8;
        }
        read_u64(&a[n - 8..]) == read_u64(&b[n - 8..])
    } else {
        words(a) == words(b)
    }
}

/// The bytes of a part shorter than 8 as one word, read with whole loads:
/// assembling it byte by byte in a buffer stalls the CPU's store-to-load
/// forwarding, which cost more than the rest of a lookup.
#[inline]
pub(crate) fn words(part: &[u8]) -> u64 {
    let n = part.len();
    if n >= 4 {
        u64::from(read_u32(part)) | u64::from(read_u32(&part[n - 4..])) << 32
    } else if n > 0 {
        let b = |i: usize| u64::from(part[i]);
        b(0) | b(n / 2) << 8 | b(n - 1) << 16
    } else {
        0
    }
}

#[inline]
pub(crate) fn read_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[inline]
pub(crate) fn read_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

/// A family's label names, with the text that starts each label pre-rendered:
/// `{name="` for the first, `",name="` for the others, and the family's constant
/// labels (from a sub-registry) written before them.
#[derive(Debug)]
pub(crate) struct LabelNames {
    pub(crate) prefixes: Box<[Box<[u8]>]>,
    /// `{k="v",k2="v2"` for constant labels, empty without any.
    pub(crate) constant: Box<[u8]>,
    /// Every label name, the constant ones first, for the registry's checks.
    all: Box<[Box<str>]>,
    /// The constant labels' values, unescaped (the protobuf format writes them raw).
    constant_values: Box<[Box<str>]>,
}

impl LabelNames {
    pub(crate) fn new(names: &[&str]) -> LabelNames {
        LabelNames::with_constants(&[], names)
    }

    /// Label names after constant labels that every series carries.
    pub(crate) fn with_constants(constants: &[(&str, &str)], names: &[&str]) -> LabelNames {
        let mut constant = Vec::new();
        for (i, (name, value)) in constants.iter().enumerate() {
            constant.extend_from_slice(if i == 0 { b"{" } else { b"," });
            constant.extend_from_slice(name.as_bytes());
            constant.extend_from_slice(b"=\"");
            escape(&mut constant, value.as_bytes(), true);
            constant.push(b'"');
        }
        let prefixes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let start: Vec<u8> = match (i, constant.is_empty()) {
                    (0, true) => b"{".to_vec(),
                    (0, false) => [&constant[..], b","].concat(),
                    _ => b"\",".to_vec(),
                };
                [&start[..], name.as_bytes(), b"=\""]
                    .concat()
                    .into_boxed_slice()
            })
            .collect();
        let all = constants
            .iter()
            .map(|(name, _)| *name)
            .chain(names.iter().copied())
            .map(Box::from)
            .collect();
        LabelNames {
            prefixes,
            constant: constant.into_boxed_slice(),
            all,
            constant_values: constants.iter().map(|(_, v)| Box::from(*v)).collect(),
        }
    }

    /// The constant labels as unescaped `(name, value)` pairs.
    pub(crate) fn constant_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.all
            .iter()
            .zip(self.constant_values.iter())
            .map(|(n, v)| (&**n, &**v))
    }

    /// The family's own label names (after the constant ones), unescaped.
    pub(crate) fn own_names(&self) -> &[Box<str>] {
        &self.all[self.constant_values.len()..]
    }

    /// Every label name, the constant ones first.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.all.iter().map(|n| &**n).collect()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Refuses a label set of the wrong size for the family `metric`.
    #[inline]
    pub(crate) fn check_count(&self, metric: &str, got: usize) -> Result<(), Error> {
        if got == self.len() {
            return Ok(());
        }
        Err(Error::LabelCount {
            metric: metric.to_owned(),
            expected: self.len(),
            got,
        })
    }
}

/// Appends `s` with backslash and newline escaped, and double quotes too if `quotes`.
pub(crate) fn escape(buf: &mut Vec<u8>, s: &[u8], quotes: bool) {
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if BYTE_CLASS[usize::from(b)] != ESCAPED || (b == b'"' && !quotes) {
            continue;
        }
        buf.extend_from_slice(&s[run..i]);
        buf.extend_from_slice(escaped(b));
        run = i + 1;
    }
    buf.extend_from_slice(&s[run..]);
}

pub(crate) fn escaped(b: u8) -> &'static [u8] {
    match b {
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        _ => b"\\\"",
    }
}

pub(crate) const PLAIN: u8 = 0;
pub(crate) const ESCAPED: u8 = 1;
pub(crate) const NEXT_VALUE: u8 = 2;

/// What each byte of a label value (or HELP text) needs in the exposition.
pub(crate) static BYTE_CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    class[b'\\' as usize] = ESCAPED;
    class[b'\n' as usize] = ESCAPED;
    class[b'"' as usize] = ESCAPED;
    class[SEPARATOR as usize] = NEXT_VALUE;
    class
};
