//! The request-head parser on arbitrary bytes: it never panics, what it accepts
//! lies within its limits, feeding it in two pieces changes nothing, and it never
//! accepts a head that httparse refuses or reads one differently.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/server/parse.rs"]
mod parse;

use parse::{Head, MAX_FIELDS, MAX_HEAD, Scan, parse_all};

fuzz_target!(|data: &[u8]| {
    let mut head = Head::new();
    let whole = parse_all(data, &mut head);
    // The scan resumes where it stopped: two pieces give what one gives.
    if !data.is_empty() {
        let cut = data[0] as usize % data.len();
        let mut scan = Scan::default();
        let first = scan.head_len(&data[..cut]);
        let second = if matches!(first, Ok(None)) {
            scan.head_len(data)
        } else {
            first
        };
        let mut again = Scan::default();
        assert_eq!(second, again.head_len(data));
    }
    let Ok(Some((len, meaning))) = whole else {
        return;
    };
    assert!(len <= MAX_HEAD && len <= data.len());
    assert!(head.fields.len() <= MAX_FIELDS);
    assert!(meaning.path.end <= len);
    let mut headers = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut theirs = httparse::Request::new(&mut headers);
    match theirs.parse(&data[..len]) {
        Ok(httparse::Status::Complete(n)) => {
            assert_eq!(n, len);
            assert_eq!(
                theirs.method.map(str::as_bytes),
                Some(&data[head.method.clone()])
            );
            assert_eq!(
                theirs.path.map(str::as_bytes),
                Some(&data[head.target.clone()])
            );
            assert_eq!(theirs.version, Some(head.minor));
            assert_eq!(theirs.headers.len(), head.fields.len());
            for (h, f) in theirs.headers.iter().zip(&head.fields) {
                assert_eq!(h.name.as_bytes(), &data[f.name.clone()]);
                assert_eq!(h.value.trim_ascii(), &data[f.value.clone()]);
            }
        }
        other => panic!("accepted what httparse refuses: {other:?}"),
    }
});
