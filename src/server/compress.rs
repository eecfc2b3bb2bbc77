//! gzip for `/metrics`: whether the client takes it (`Accept-Encoding`), and the
//! compression of the body, with memory that each worker keeps.

use super::Routed;
use super::request::Request;
use crate::gzip::Gzip;

/// Bodies up to this size go out as they are: gzip would save little.
pub(crate) const GZIP_ABOVE: usize = 1024;

/// A worker's compressor and its second body buffer.
#[derive(Default)]
pub(crate) struct Compression {
    gzip: Gzip,
    spare: Vec<u8>,
}

/// What the head of an answer says about its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub(crate) content_encoding: Option<&'static str>,
    pub(crate) vary: Option<&'static str>,
}

impl Compression {
    /// For a compressible answer (the scrape's): gzips `body` in place when it is over
    /// [`GZIP_ABOVE`] and the request takes gzip, and says so (every such
    /// answer varies with `Accept-Encoding`). Other answers are left alone. A
    /// `HEAD` is treated as a `GET`, so that its `Content-Length` is the same.
    pub(crate) fn apply(
        &mut self,
        request: &Request<'_>,
        routed: &Routed,
        body: &mut Vec<u8>,
    ) -> Encoding {
        if !routed.compressible {
            return Encoding {
                content_encoding: None,
                vary: None,
            };
        }
        let fields = request
            .headers()
            .filter(|(name, _)| name.eq_ignore_ascii_case("accept-encoding"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok());
        let gzip = body.len() > GZIP_ABOVE && accepts_gzip(fields);
        if gzip {
            self.spare.clear();
            self.gzip.compress(body, &mut self.spare);
            std::mem::swap(body, &mut self.spare);
        }
        Encoding {
            content_encoding: gzip.then_some("gzip"),
            vary: Some("Accept-Encoding"),
        }
    }
}

/// Whether the `Accept-Encoding` fields (RFC 9110, 12.5.3) make gzip the
/// answer: gzip (or `x-gzip`, or else `*`) has a weight above 0, and no less
/// than a weight that `identity` (or else `*`) is given explicitly. Names are
/// compared without regard to case, and the first mention of a coding counts;
/// an element with a malformed weight is ignored. No field at all means the
/// client said nothing, and gets no gzip.
pub(crate) fn accepts_gzip<'a>(fields: impl IntoIterator<Item = &'a str>) -> bool {
    let (mut gzip, mut identity, mut any) = (None, None, None);
    for element in fields.into_iter().flat_map(crate::negotiate::elements) {
        let coding = element.value;
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut identity
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        slot.get_or_insert(element.weight);
    }
    let gzip = gzip.or(any).unwrap_or(0);
    let identity = identity.or(any).unwrap_or(0);
    gzip > 0 && gzip >= identity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_negotiated() {
        for (fields, gzip) in [
            (&[][..], false),
            (&[""], false),
            (&["gzip"], true),
            (&["GZip"], true),
            (&["x-gzip"], true),
            (&["deflate, gzip"], true),
            (&["gzip, deflate, br"], true),
            (&["br"], false),
            (&["identity"], false),
            (&["*"], true),
            (&["*;q=0"], false),
            (&["gzip;q=0"], false),
            (&["gzip; q=0"], false),
            (&["gzip ;Q=0.000"], false),
            (&["gzip;q=0.001"], true),
            (&["gzip;q=0.5"], true),
            (&["gzip;q=1"], true),
            (&["gzip;q=1.000"], true),
            (&["gzip;q=0, *"], false),
            (&["*, gzip;q=0"], false),
            (&["*;q=0, gzip"], true),
            (&["identity;q=0, *;q=0.5"], true),
            (&["gzip;q=0.5, identity"], false),
            (&["gzip;q=0.5, identity;q=0.5"], true),
            (&["gzip;q=0.5, *;q=0.9"], false),
            (&["gzip;q=0.9, *;q=0.5"], true),
            // Malformed weights: the element is ignored.
            (&["gzip;q=2"], false),
            (&["gzip;q=1.5"], false),
            (&["gzip;q=0.1234"], false),
            (&["gzip;q="], false),
            (&["gzip;q"], false),
            (&["gzip;q=abc, *"], true),
            (&["gzip;q=-1"], false),
            // Other parameters are allowed; gzipped is not gzip.
            (&["gzip;level=1"], true),
            (&["gzipped"], false),
            (&[" , ,gzip , "], true),
            // Several fields are one list.
            (&["br", "gzip"], true),
            (&["gzip;q=0", "gzip"], false),
        ] {
            assert_eq!(accepts_gzip(fields.iter().copied()), gzip, "{fields:?}");
        }
    }
}
