//! The request head, found and read strictly (RFC 9112), with std only.
//!
//! Three steps, so that each does one thing and the slow ones run once:
//!
//! * [`Scan`] follows the bytes of a connection as they arrive and says where the
//!   head ends. It checks line endings on the way (a bare CR or a bare LF is refused
//!   at once, rather than waited on) and the size limits, and it never looks at a
//!   byte twice, so a client that sends one byte at a time costs one byte of work
//!   per byte.
//! * [`parse`] splits the complete head into the request line and the fields, and
//!   refuses what the grammar does not allow.
//! * [`check`] reads what the fields mean for this server: the method, the body's
//!   length, whether the connection stays open, and the framing rules that close
//!   request smuggling (no `Transfer-Encoding`, one `Content-Length` of digits
//!   only, one `Host`).
//!
//! Anything refused comes back as a [`Reject`], which carries the status to answer
//! with; the connection is closed after that answer.
//!
//! This file depends on nothing but std, so that the fuzz target compiles it as it is.

use std::ops::Range;

/// The longest request line accepted, without its CRLF (longer: 414).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The longest head accepted, empty lines before it and the final CRLF included
/// (longer: 431).
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields accepted (more: 431).
pub const MAX_FIELDS: usize = 64;

/// Why a request is refused, and so which status it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// 400: the request breaks the grammar or the framing rules; says which rule.
    BadRequest(&'static str),
    /// 413: the declared body is over the server's limit.
    BodyTooLarge,
    /// 414: the request line is over [`MAX_REQUEST_LINE`].
    UriTooLong,
    /// 417: an expectation other than `100-continue`.
    ExpectationFailed,
    /// 431: the head is over [`MAX_HEAD`] or has more than [`MAX_FIELDS`] fields.
    HeadTooLarge,
    /// 501: a method this server does not implement, or a `Transfer-Encoding`.
    NotImplemented(&'static str),
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl Reject {
    /// The status code of the answer.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest(_) => 400,
            Reject::BodyTooLarge => 413,
            Reject::UriTooLong => 414,
            Reject::ExpectationFailed => 417,
            Reject::HeadTooLarge => 431,
            Reject::NotImplemented(_) => 501,
            Reject::VersionNotSupported => 505,
        }
    }

    /// A short explanation, for the body of the answer.
    pub fn explain(self) -> &'static str {
        match self {
            Reject::BadRequest(why) | Reject::NotImplemented(why) => why,
            Reject::BodyTooLarge => "the declared body is over the limit",
            Reject::UriTooLong => "the request line is over 8 KiB",
            Reject::ExpectationFailed => "only the 100-continue expectation is known",
            Reject::HeadTooLarge => "the request head is over 16 KiB or 64 fields",
            Reject::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are served",
        }
    }
}

/// Where the head of a request ends, followed across reads.
///
/// Feed it the bytes received so far (the same bytes each time, and more of
/// them); it resumes where it stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes already looked at.
    pos: usize,
    /// Where the request line starts (after any empty lines), once known.
    start: Option<usize>,
    /// Where the request line's CRLF is, once it came.
    line_end: Option<usize>,
    /// The head's length, once it is known: what follows is the body.
    head_len: Option<usize>,
}

impl Scan {
    /// The head's length (up to and including its final CRLF CRLF) once it is all
    /// in `buf`, `None` while more is needed.
    pub fn head_len(&mut self, buf: &[u8]) -> Result<Option<usize>, Reject> {
        if self.head_len.is_some() {
            return Ok(self.head_len);
        }
        let mut i = self.pos;
        let start = match self.start {
            Some(start) => start,
            None => {
                // Empty lines before the request line are skipped (RFC 9112, 2.2).
                loop {
                    if i >= MAX_HEAD {
                        return Err(Reject::HeadTooLarge);
                    }
                    match (buf.get(i), buf.get(i + 1)) {
                        (Some(b'\r'), Some(b'\n')) => i += 2,
                        (Some(b'\r'), Some(_)) => return Err(BARE_CR),
                        (Some(b'\n'), _) => return Err(BARE_LF),
                        (Some(b'\r'), None) | (None, _) => {
                            self.pos = i;
                            return Ok(None);
                        }
                        (Some(_), _) => break,
                    }
                }
                self.start = Some(i);
                i
            }
        };
        // From here every byte is checked against the one before it, which is
        // why `pos` may stop right after a CR: its partner is checked next time.
        while i < buf.len() {
            let b = buf[i];
            let after_cr = i > start && buf[i - 1] == b'\r';
            if b == b'\n' {
                if !after_cr {
                    return Err(BARE_LF);
                }
                match self.line_end {
                    None => {
                        if i - 1 - start > MAX_REQUEST_LINE {
                            return Err(Reject::UriTooLong);
                        }
                        self.line_end = Some(i - 1);
                    }
                    // An empty line after the request line ends the head.
                    Some(_) if i >= start + 3 && buf[i - 3] == b'\r' && buf[i - 2] == b'\n' => {
                        if i + 1 > MAX_HEAD {
                            return Err(Reject::HeadTooLarge);
                        }
                        self.pos = i + 1;
                        self.head_len = Some(i + 1);
                        return Ok(self.head_len);
                    }
                    Some(_) => {}
                }
            } else if after_cr {
                return Err(BARE_CR);
            }
            i += 1;
            if self.line_end.is_none() && i - start > MAX_REQUEST_LINE + 1 {
                return Err(Reject::UriTooLong);
            }
            if i >= MAX_HEAD {
                return Err(Reject::HeadTooLarge);
            }
        }
        self.pos = i;
        Ok(None)
    }
}

const BARE_CR: Reject = Reject::BadRequest("a CR not followed by LF");
const BARE_LF: Reject = Reject::BadRequest("a line ended by LF without CR");

/// A parsed head: positions in the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method token, as sent.
    pub method: Range<usize>,
    /// The request target, as sent.
    pub target: Range<usize>,
    /// The minor version: `HTTP/1.0` or `HTTP/1.1`.
    pub minor: u8,
    /// The header fields, in order: name and value (without surrounding spaces).
    pub fields: Vec<Field>,
}

/// One header field: where its name and its value are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name, a token.
    pub name: Range<usize>,
    /// The value, without the spaces and tabs around it.
    pub value: Range<usize>,
}

impl Head {
    /// An empty head whose field list is reused by [`parse`].
    pub fn new() -> Head {
        Head {
            method: 0..0,
            target: 0..0,
            minor: 1,
            fields: Vec::new(),
        }
    }
}

impl Default for Head {
    fn default() -> Self {
        Head::new()
    }
}

/// Parses a complete head (`buf[..len]`, `len` from [`Scan::head_len`]) into `head`.
///
/// The grammar of RFC 9112, without the leniencies it allows: one space between
/// the parts of the request line, no whitespace between a field name and its
/// colon, no line folding, no control characters other than tab in a value.
pub fn parse(buf: &[u8], len: usize, head: &mut Head) -> Result<(), Reject> {
    head.fields.clear();
    let mut lines = Lines {
        buf: &buf[..len],
        pos: 0,
    };
    // Empty lines before the request line, as the scan skipped them.
    let line = loop {
        match lines.next() {
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
            None => return Err(Reject::BadRequest("no request line")),
        }
    };
    request_line(buf, line, head)?;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if head.fields.len() == MAX_FIELDS {
            return Err(Reject::HeadTooLarge);
        }
        head.fields.push(field(buf, line)?);
    }
    Ok(())
}

/// The lines of a head, as ranges without their CRLF (the scan checked that
/// every line ends in CRLF).
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Iterator for Lines<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let rest = self.buf.get(self.pos..)?;
        let lf = rest.iter().position(|&b| b == b'\n')?;
        let line = self.pos..self.pos + lf.saturating_sub(1);
        self.pos += lf + 1;
        Some(line)
    }
}

fn request_line(buf: &[u8], line: Range<usize>, head: &mut Head) -> Result<(), Reject> {
    let bytes = &buf[line.clone()];
    let first = bytes.iter().position(|&b| b == b' ');
    let second = first.and_then(|f| {
        bytes[f + 1..]
            .iter()
            .position(|&b| b == b' ')
            .map(|s| f + 1 + s)
    });
    let (Some(first), Some(second)) = (first, second) else {
        return Err(Reject::BadRequest(
            "the request line is not: method target version",
        ));
    };
    let (method, target, version) = (
        &bytes[..first],
        &bytes[first + 1..second],
        &bytes[second + 1..],
    );
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Reject::BadRequest("the method is not a token"));
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(Reject::BadRequest(
            "the request target has a character it may not have",
        ));
    }
    head.minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Reject::VersionNotSupported);
        }
        _ => {
            return Err(Reject::BadRequest(
                "the version is not HTTP/<digit>.<digit>",
            ));
        }
    };
    head.method = line.start..line.start + first;
    head.target = line.start + first + 1..line.start + second;
    Ok(())
}

fn field(buf: &[u8], line: Range<usize>) -> Result<Field, Reject> {
    let bytes = &buf[line.clone()];
    if matches!(bytes.first(), Some(b' ' | b'\t')) {
        return Err(Reject::BadRequest("a folded header line (obs-fold)"));
    }
    let Some(colon) = bytes.iter().position(|&b| b == b':') else {
        return Err(Reject::BadRequest("a header line without a colon"));
    };
    let name = &bytes[..colon];
    if name.is_empty() {
        return Err(Reject::BadRequest("an empty header name"));
    }
    if let Some(&bad) = name.iter().find(|&&b| !is_tchar(b)) {
        return Err(Reject::BadRequest(if bad == b' ' || bad == b'\t' {
            "whitespace between a header name and its colon"
        } else {
            "a header name that is not a token"
        }));
    }
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let value = &bytes[colon + 1..];
    let lead = value.iter().take_while(|b| is_space(b)).count();
    let trail = value[lead..]
        .iter()
        .rev()
        .take_while(|b| is_space(b))
        .count();
    let value_start = line.start + colon + 1 + lead;
    let value_end = line.end - trail;
    // Field values may hold visible ASCII, spaces, tabs and obs-text (0x80-0xFF);
    // no other control character, NUL and DEL included.
    if buf[value_start..value_end]
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(Reject::BadRequest("a control character in a header value"));
    }
    Ok(Field {
        name: line.start..line.start + colon,
        value: value_start..value_end,
    })
}

/// `tchar` of RFC 9110: the characters of a token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The request methods this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: answered as `GET`, without the body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
}

impl Method {
    /// The method's name, as it is sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
        }
    }

    fn from_token(token: &[u8]) -> Option<Method> {
        // Methods are case-sensitive (RFC 9110, 9.1).
        Some(match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            _ => return None,
        })
    }
}

/// What the head means for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meaning {
    /// The method.
    pub method: Method,
    /// The path of the target (`/` for an absolute-form target without one, `*`
    /// for `OPTIONS *`).
    pub path: Range<usize>,
    /// The query, after `?`, if there is one.
    pub query: Option<Range<usize>>,
    /// The declared body length (0 without `Content-Length`).
    pub body_len: u64,
    /// Whether the client lets the connection stay open after the answer.
    pub keep_alive: bool,
}

/// Reads what the fields of a parsed head mean, and refuses what this server will
/// not serve. Request smuggling needs two parties to frame a request differently;
/// these rules leave one framing only: `Content-Length`, given once, in digits.
pub fn check(buf: &[u8], head: &Head) -> Result<Meaning, Reject> {
    let mut hosts = 0;
    let mut length = None;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive = false;
    for f in &head.fields {
        let name = &buf[f.name.clone()];
        let value = &buf[f.value.clone()];
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some() {
                return Err(Reject::BadRequest("Content-Length given twice"));
            }
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(Reject::BadRequest("Content-Length is not a number"));
            }
            // Digits only, so a failure is an overflow: a length no limit allows.
            let text = std::str::from_utf8(value).unwrap_or("");
            length = Some(text.parse::<u64>().unwrap_or(u64::MAX));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect")
            && !value.eq_ignore_ascii_case(b"100-continue")
        {
            return Err(Reject::ExpectationFailed);
        }
    }
    if transfer_encoding && length.is_some() {
        return Err(Reject::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if hosts > 1 {
        return Err(Reject::BadRequest("Host given twice"));
    }
    if hosts == 0 && head.minor == 1 {
        return Err(Reject::BadRequest("no Host in an HTTP/1.1 request"));
    }
    let method = Method::from_token(&buf[head.method.clone()]).ok_or(Reject::NotImplemented(
        "a method this server does not implement",
    ))?;
    if transfer_encoding {
        return Err(Reject::NotImplemented(
            "Transfer-Encoding on a request (send Content-Length)",
        ));
    }
    let (path, query) = split_target(buf, head.target.clone(), method)?;
    Ok(Meaning {
        method,
        path,
        query,
        body_len: length.unwrap_or(0),
        keep_alive: !close && (head.minor == 1 || keep_alive),
    })
}

/// The path and query of a target in origin form (`/path?query`), absolute form
/// (`http://host/path?query`), or asterisk form (`*`, for `OPTIONS` only).
fn split_target(
    buf: &[u8],
    target: Range<usize>,
    method: Method,
) -> Result<(Range<usize>, Option<Range<usize>>), Reject> {
    let bytes = &buf[target.clone()];
    if bytes == b"*" {
        return if method == Method::Options {
            Ok((target, None))
        } else {
            Err(Reject::BadRequest("the target * is for OPTIONS only"))
        };
    }
    let path_start = if bytes.first() == Some(&b'/') {
        target.start
    } else {
        let scheme = bytes.iter().position(|&b| b == b':').unwrap_or(0);
        let is_http = bytes[..scheme].eq_ignore_ascii_case(b"http")
            || bytes[..scheme].eq_ignore_ascii_case(b"https");
        if !(is_http && bytes[scheme..].starts_with(b"://")) {
            return Err(Reject::BadRequest(
                "the target is neither a path nor an http URI",
            ));
        }
        let authority = scheme + 3;
        match bytes[authority..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
        {
            Some(end) => target.start + authority + end,
            // `http://host` alone: the path is `/`, which the target does not
            // hold; an empty path range stands for it.
            None => target.end,
        }
    };
    let rest = path_start..target.end;
    match buf[rest.clone()].iter().position(|&b| b == b'?') {
        Some(q) => Ok((
            path_start..path_start + q,
            Some(path_start + q + 1..target.end),
        )),
        None => Ok((rest, None)),
    }
}

/// Parses one whole request head from the start of `buf`, all three steps: the
/// head, its length, and what it means; `Ok(None)` if it is not complete yet.
/// What the fuzz target and the tests call.
#[allow(dead_code)]
pub fn parse_all(buf: &[u8], head: &mut Head) -> Result<Option<(usize, Meaning)>, Reject> {
    let mut scan = Scan::default();
    let Some(len) = scan.head_len(buf)? else {
        return Ok(None);
    };
    parse(buf, len, head)?;
    Ok(Some((len, check(buf, head)?)))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
