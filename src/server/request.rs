//! [`Request`]: what a route is given.

pub use super::parse::Method;
use super::parse::{Field, Meaning};

/// A request, as a route sees it: parsed, checked and complete (its whole body,
/// at most [`Exporter::body_limit`](crate::Exporter::body_limit), has come).
///
/// ```no_run
/// use promlite::{Answer, Exporter, Method};
///
/// let server = Exporter::default_registry()
///     .routes(|request, body| {
///         if request.path() != "/echo" {
///             return None; // 404
///         }
///         if request.method() != Method::Post {
///             return Some(Answer::method_not_allowed("POST"));
///         }
///         let name = request.query().unwrap_or("anonymous");
///         let agent = request.header("user-agent").unwrap_or("?");
///         body.extend_from_slice(format!("{name} ({agent}) sent {} bytes\n", request.body().len()).as_bytes());
///         Some(Answer::ok("text/plain; charset=utf-8"))
///     })
///     .serve("127.0.0.1:8080")
///     .unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    method: Method,
    minor: u8,
    path: &'a str,
    query: Option<&'a str>,
    /// The bytes the head's fields point into.
    head: &'a [u8],
    fields: &'a [Field],
    body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The view of a checked head in `buf` (the head and the body that follows it).
    pub(crate) fn new(
        buf: &'a [u8],
        minor: u8,
        fields: &'a [Field],
        meaning: &Meaning,
        body: &'a [u8],
    ) -> Request<'a> {
        // The target was checked to be visible ASCII, so these are UTF-8.
        let text = |range: std::ops::Range<usize>| std::str::from_utf8(&buf[range]).unwrap_or("");
        let path = match text(meaning.path.clone()) {
            "" => "/",
            path => path,
        };
        Request {
            method: meaning.method,
            minor,
            path,
            query: meaning.query.clone().map(text),
            head: buf,
            fields,
            body,
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The path of the target, as sent (not percent-decoded), without the query.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query, after `?`, as sent; `None` without a `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn version(&self) -> &'static str {
        if self.minor == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// The value of the first header field with this name (compared without
    /// regard to case), if it is there and is UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every header field, in order: the name (a token, so ASCII) and the value's
    /// bytes (which may hold bytes over 0x7F), without surrounding whitespace.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let head = self.head;
        self.fields.iter().map(move |f| {
            (
                std::str::from_utf8(&head[f.name.clone()]).unwrap_or(""),
                &head[f.value.clone()],
            )
        })
    }

    /// The body (empty without `Content-Length`).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}
