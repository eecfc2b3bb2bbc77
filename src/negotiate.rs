//! The lists that HTTP content negotiation sends (`Accept`, `Accept-Encoding`;
//! RFC 9110, 12.4.2 and 12.5): elements between commas, each a value with
//! `;`-separated parameters, one of which may be the weight `q`.
//!
//! One reading of them for the whole crate: an element whose weight is malformed
//! (`q=1.5`, `q=.5`, more than three decimals) or that has a parameter without
//! `=` is dropped, as if it had not been sent, so that it never wins.

/// One element of a list, with its weight in thousandths (1000 when not given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Element<'a> {
    pub(crate) value: &'a str,
    params: &'a str,
    pub(crate) weight: u32,
}

impl<'a> Element<'a> {
    /// The parameter named `name` (compared without regard to case), its
    /// value without surrounding quotes.
    pub(crate) fn param(&self, name: &str) -> Option<&'a str> {
        params(self.params)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches('"'))
    }
}

/// The well-formed, non-empty elements of one header field, in order.
pub(crate) fn elements(field: &str) -> impl Iterator<Item = Element<'_>> {
    field.split(',').filter_map(|element| {
        let (value, params_text) = element.split_once(';').unwrap_or((element, ""));
        let value = value.trim_matches(is_ows);
        if value.is_empty() {
            return None;
        }
        let mut weight = 1000;
        for param in params_text.split(';') {
            if param.trim_matches(is_ows).is_empty() {
                continue;
            }
            let (name, v) = param.split_once('=')?;
            if name.trim_matches(is_ows).eq_ignore_ascii_case("q") {
                weight = qvalue(v.trim_matches(is_ows))?;
            }
        }
        Some(Element {
            value,
            params: params_text,
            weight,
        })
    })
}

fn params(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(';').filter_map(|p| {
        let (name, value) = p.split_once('=')?;
        Some((name.trim_matches(is_ows), value.trim_matches(is_ows)))
    })
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A weight (RFC 9110, 12.4.2: `0`, `0.5`, `1.000`, at most three decimals)
/// in thousandths.
fn qvalue(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |n, b| n * 10 + u32::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_read_as_the_rfc_writes_them() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0."), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.25"), Some(250));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1."), Some(1000));
        assert_eq!(qvalue("1.0"), Some(1000));
        assert_eq!(qvalue("1.001"), None);
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue(".5"), None);
        assert_eq!(qvalue("00.5"), None);
        assert_eq!(qvalue("0.5 "), None);
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue(""), None);
    }

    #[test]
    fn elements_keep_their_parameters_and_drop_when_malformed() {
        let list: Vec<_> = elements(
            " text/plain ; version=0.0.4 ;q=0.5, ,application/x;Q=0.25;proto=\"a.b\", bad;q=2, bad;novalue, gzip",
        )
        .collect();
        assert_eq!(list.len(), 3, "{list:?}");
        assert_eq!((list[0].value, list[0].weight), ("text/plain", 500));
        assert_eq!(list[0].param("version"), Some("0.0.4"));
        assert_eq!(list[0].param("VERSION"), Some("0.0.4"));
        assert_eq!(list[0].param("proto"), None);
        assert_eq!((list[1].value, list[1].weight), ("application/x", 250));
        assert_eq!(list[1].param("proto"), Some("a.b"));
        assert_eq!((list[2].value, list[2].weight), ("gzip", 1000));
        // A trailing ';' is no parameter.
        assert_eq!(elements("gzip;").next().map(|e| e.weight), Some(1000));
    }
}
