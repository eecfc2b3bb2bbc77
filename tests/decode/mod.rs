//! Reads a delimited protobuf stream back with `protoc --decode`, one
//! `MetricFamily` at a time, and turns protoc's text output into plain values.
//! Nothing here uses promlite: the stream is split by its own varint prefixes,
//! and every field comes from protoc.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One family as decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    /// The `MetricType` enum's name: `COUNTER`, `GAUGE`, `HISTOGRAM`.
    pub kind: String,
    pub help: String,
    pub unit: String,
    /// Each metric's labels (in order) and value.
    pub metrics: Vec<(Vec<(String, String)>, Value)>,
}

/// A metric's value.
#[derive(Debug, Clone)]
pub enum Value {
    Counter(f64),
    Gauge(f64),
    Histogram {
        count: u64,
        sum: f64,
        /// Classic buckets: (upper bound, cumulative count).
        buckets: Vec<(f64, u64)>,
        native: Option<Native>,
    },
}

/// The native part of a histogram, its spans and deltas resolved to the
/// absolute count of every bucket index (buckets of count zero left out).
#[derive(Debug, Clone)]
pub struct Native {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub positive: Vec<(i32, u64)>,
    pub negative: Vec<(i32, u64)>,
}

/// Floats compare by bits (so `-0` is not `0`), NaN equal to NaN.
fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Counter(a), Value::Counter(b)) | (Value::Gauge(a), Value::Gauge(b)) => {
                same(*a, *b)
            }
            (
                Value::Histogram {
                    count: c1,
                    sum: s1,
                    buckets: b1,
                    native: n1,
                },
                Value::Histogram {
                    count: c2,
                    sum: s2,
                    buckets: b2,
                    native: n2,
                },
            ) => {
                c1 == c2
                    && same(*s1, *s2)
                    && b1.len() == b2.len()
                    && b1.iter().zip(b2).all(|(x, y)| same(x.0, y.0) && x.1 == y.1)
                    && n1 == n2
            }
            _ => false,
        }
    }
}

impl PartialEq for Native {
    fn eq(&self, other: &Native) -> bool {
        self.schema == other.schema
            && same(self.zero_threshold, other.zero_threshold)
            && self.zero_count == other.zero_count
            && self.positive == other.positive
            && self.negative == other.negative
    }
}

/// Splits a delimited stream at its varint length prefixes.
pub fn split_delimited(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut messages = Vec::new();
    while !stream.is_empty() {
        let mut len = 0u64;
        let mut shift = 0;
        let mut used = 0;
        for &b in stream.iter().take(10) {
            used += 1;
            len |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        let end = used + len as usize;
        assert!(end <= stream.len(), "a length prefix runs past the stream");
        messages.push(&stream[used..end]);
        stream = &stream[end..];
    }
    messages
}

fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// `protoc --decode=io.prometheus.client.MetricFamily` of one message.
pub fn protoc_text(message: &[u8]) -> String {
    let mut child = Command::new("protoc")
        .arg(format!("-I{}", proto_dir().display()))
        .arg("--decode=io.prometheus.client.MetricFamily")
        .arg("metrics.proto")
        .current_dir(proto_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("protoc is installed (Debian package protobuf-compiler)");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("protoc writes ASCII")
}

/// Every family of the stream, through protoc; the texts are kept in
/// `target/tmp/<scratch>/` for a look when a test fails.
pub fn decode_stream(stream: &[u8], scratch: &str) -> Vec<Family> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(scratch);
    std::fs::create_dir_all(&dir).unwrap();
    split_delimited(stream)
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let text = protoc_text(message);
            std::fs::write(dir.join(format!("family-{i:02}.txt")), &text).unwrap();
            family(&parse(&text))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// protoc's text format: `name: value` and `name { ... }`.

/// A field's value in the text format.
#[derive(Debug, Clone)]
pub enum Field {
    /// A quoted string, unescaped (bytes: protoc escapes non-ASCII as octal).
    Str(Vec<u8>),
    /// A number or an enum name, as written.
    Bare(String),
    Message(Message),
}

pub type Message = Vec<(String, Field)>;

pub fn parse(text: &str) -> Message {
    let mut chars = text.as_bytes();
    let message = parse_message(&mut chars);
    assert!(
        chars.is_empty(),
        "text left over: {:?}",
        String::from_utf8_lossy(chars)
    );
    message
}

fn skip_space(s: &mut &[u8]) {
    while let [b, rest @ ..] = *s {
        if !b.is_ascii_whitespace() {
            break;
        }
        *s = rest;
    }
}

fn parse_message(s: &mut &[u8]) -> Message {
    let mut fields = Vec::new();
    loop {
        skip_space(s);
        match s.first() {
            None | Some(b'}') => return fields,
            _ => {}
        }
        let end = s
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .unwrap_or(s.len());
        let name = String::from_utf8(s[..end].to_vec()).unwrap();
        *s = &s[end..];
        skip_space(s);
        if s.first() == Some(&b':') {
            *s = &s[1..];
            skip_space(s);
        }
        let value = match s.first() {
            Some(b'{') => {
                *s = &s[1..];
                let inner = parse_message(s);
                assert_eq!(s.first(), Some(&b'}'));
                *s = &s[1..];
                Field::Message(inner)
            }
            Some(b'"') => Field::Str(parse_string(s)),
            _ => {
                let end = s
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .unwrap_or(s.len());
                let bare = String::from_utf8(s[..end].to_vec()).unwrap();
                *s = &s[end..];
                Field::Bare(bare)
            }
        };
        fields.push((name, value));
    }
}

/// A C-escaped string as protoc writes it: `\n`, `\"`, `\\`, `\'`, and octal
/// `\NNN` for every other byte outside printable ASCII.
fn parse_string(s: &mut &[u8]) -> Vec<u8> {
    assert_eq!(s[0], b'"');
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match s[i] {
            b'"' => break,
            b'\\' => {
                i += 1;
                match s[i] {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'"' => out.push(b'"'),
                    b'\'' => out.push(b'\''),
                    b'\\' => out.push(b'\\'),
                    b'0'..=b'7' => {
                        let digits = s[i..]
                            .iter()
                            .take(3)
                            .take_while(|&&d| (b'0'..=b'7').contains(&d));
                        let n = digits.clone().count();
                        let v = digits.fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                        out.push(v as u8);
                        i += n - 1;
                    }
                    other => panic!("unknown escape \\{}", other as char),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    *s = &s[i + 1..];
    out
}

// ---------------------------------------------------------------------------
// From the text format's fields to families.

fn text(field: &Field) -> String {
    match field {
        Field::Str(bytes) => String::from_utf8(bytes.clone()).expect("UTF-8 strings"),
        other => panic!("not a string: {other:?}"),
    }
}

fn bare(field: &Field) -> &str {
    match field {
        Field::Bare(s) => s,
        other => panic!("not a number: {other:?}"),
    }
}

pub fn float(field: &Field) -> f64 {
    match bare(field) {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" | "-nan" => f64::NAN,
        s => s.parse().unwrap_or_else(|_| panic!("not a double: {s}")),
    }
}

pub fn int<T: std::str::FromStr>(field: &Field) -> T
where
    T::Err: std::fmt::Debug,
{
    bare(field).parse().unwrap()
}

fn message(field: &Field) -> &Message {
    match field {
        Field::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

/// The fields named `name`, in order.
pub fn all<'a>(m: &'a Message, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
    m.iter().filter(move |(n, _)| n == name).map(|(_, f)| f)
}

pub fn one<'a>(m: &'a Message, name: &'a str) -> Option<&'a Field> {
    let mut found = all(m, name);
    let first = found.next();
    assert!(found.next().is_none(), "{name} twice");
    first
}

fn family(m: &Message) -> Family {
    Family {
        name: text(one(m, "name").expect("a name")),
        kind: one(m, "type").map_or("COUNTER".into(), |t| bare(t).to_owned()),
        help: one(m, "help").map(text).unwrap_or_default(),
        unit: one(m, "unit").map(text).unwrap_or_default(),
        metrics: all(m, "metric").map(|f| metric(message(f))).collect(),
    }
}

fn metric(m: &Message) -> (Vec<(String, String)>, Value) {
    let labels = all(m, "label")
        .map(|l| {
            let l = message(l);
            (
                one(l, "name").map(text).unwrap_or_default(),
                one(l, "value").map(text).unwrap_or_default(),
            )
        })
        .collect();
    let value_of = |m: &Message| one(m, "value").map_or(0.0, float);
    let value = if let Some(c) = one(m, "counter") {
        Value::Counter(value_of(message(c)))
    } else if let Some(g) = one(m, "gauge") {
        Value::Gauge(value_of(message(g)))
    } else if let Some(h) = one(m, "histogram") {
        histogram(message(h))
    } else {
        panic!("a metric of no known type: {m:?}")
    };
    (labels, value)
}

fn histogram(h: &Message) -> Value {
    let buckets = all(h, "bucket")
        .map(|b| {
            let b = message(b);
            (
                one(b, "upper_bound").map_or(0.0, float),
                one(b, "cumulative_count").map_or(0, int),
            )
        })
        .collect();
    let is_native = [
        "schema",
        "zero_threshold",
        "zero_count",
        "positive_span",
        "negative_span",
    ]
    .iter()
    .any(|f| one_or_many(h, f));
    let native = is_native.then(|| Native {
        schema: one(h, "schema").map_or(0, int),
        zero_threshold: one(h, "zero_threshold").map_or(0.0, float),
        zero_count: one(h, "zero_count").map_or(0, int),
        positive: resolve(h, "positive_span", "positive_delta"),
        negative: resolve(h, "negative_span", "negative_delta"),
    });
    Value::Histogram {
        count: one(h, "sample_count").map_or(0, int),
        sum: one(h, "sample_sum").map_or(0.0, float),
        buckets,
        native,
    }
}

fn one_or_many(m: &Message, name: &str) -> bool {
    all(m, name).next().is_some()
}

/// Spans and deltas to (bucket index, absolute count), zero counts left out.
pub fn resolve(h: &Message, spans: &str, deltas: &str) -> Vec<(i32, u64)> {
    let mut deltas = all(h, deltas).map(int::<i64>);
    let mut out = Vec::new();
    let mut index = 0i32;
    let mut count = 0i64;
    for (i, span) in all(h, spans).enumerate() {
        let span = message(span);
        let offset: i32 = one(span, "offset").map_or(0, int);
        let length: u32 = one(span, "length").map_or(0, int);
        index = if i == 0 { offset } else { index + offset };
        for _ in 0..length {
            count += deltas.next().expect("as many deltas as the spans' lengths");
            assert!(count >= 0, "a bucket count below zero");
            if count > 0 {
                out.push((index, count as u64));
            }
            index += 1;
        }
    }
    assert!(
        deltas.next().is_none(),
        "more deltas than the spans' lengths"
    );
    out
}
