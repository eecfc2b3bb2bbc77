//! The response head, written by hand into a buffer.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything the head of a response says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub content_length: usize,
    pub close: bool,
    pub allow: Option<&'a str>,
    pub retry_after_secs: Option<u32>,
    pub content_encoding: Option<&'a str>,
    pub vary: Option<&'a str>,
}

impl Head<'_> {
    /// Appends the status line and the fields, then the empty line.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_number(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        // An origin server with a clock sends Date (RFC 9110, 6.6.1).
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(&date_now());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_number(out, self.content_length as u64);
        if let Some(encoding) = self.content_encoding {
            out.extend_from_slice(b"\r\nContent-Encoding: ");
            out.extend_from_slice(encoding.as_bytes());
        }
        if let Some(vary) = self.vary {
            out.extend_from_slice(b"\r\nVary: ");
            out.extend_from_slice(vary.as_bytes());
        }
        if let Some(allow) = self.allow {
            out.extend_from_slice(b"\r\nAllow: ");
            out.extend_from_slice(allow.as_bytes());
        }
        if let Some(secs) = self.retry_after_secs {
            out.extend_from_slice(b"\r\nRetry-After: ");
            push_number(out, u64::from(secs));
        }
        out.extend_from_slice(if self.close {
            b"\r\nConnection: close\r\n\r\n"
        } else {
            b"\r\nConnection: keep-alive\r\n\r\n"
        });
    }
}

fn push_number(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The reason phrase of the statuses this server sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        s if s < 300 => "OK",
        s if s < 400 => "Redirection",
        s if s < 500 => "Client Error",
        _ => "Server Error",
    }
}

/// An IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`: 29 bytes.
pub(crate) type Date = [u8; 29];

thread_local! {
    /// This thread's last date and the second it is for: the date changes once a
    /// second, and formatting it for every response would be wasted work.
    static DATE: Cell<(u64, Date)> = const { Cell::new((u64::MAX, [0; 29])) };
}

fn date_now() -> Date {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let (at, date) = cached.get();
        if at == secs {
            return date;
        }
        let date = http_date(secs);
        cached.set((secs, date));
        date
    })
}

/// Formats a Unix time as an IMF-fixdate (RFC 9110, 5.6.7).
pub(crate) fn http_date(unix_secs: u64) -> Date {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.min(9999);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], secs_of_day / 3600);
    two_digits(&mut out[20..22], secs_of_day / 60 % 60);
    two_digits(&mut out[23..25], secs_of_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// The proleptic Gregorian date of a day count since 1970-01-01: the calendar
/// repeats every 400 years (146,097 days), and counting years from March puts the
/// leap day last, so each step is a division.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        // The example of RFC 9110.
        assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        // A leap day, and the last second of a leap year.
        assert_eq!(&http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&http_date(1_609_459_199), b"Thu, 31 Dec 2020 23:59:59 GMT");
        assert_eq!(&http_date(4_107_542_400), b"Mon, 01 Mar 2100 00:00:00 GMT");
    }

    #[test]
    fn the_head_has_every_field_it_is_given() {
        let mut out = Vec::new();
        Head {
            status: 503,
            content_type: "text/plain",
            content_length: 12,
            close: true,
            allow: Some("GET, HEAD"),
            retry_after_secs: Some(1),
            content_encoding: Some("gzip"),
            vary: Some("Accept-Encoding"),
        }
        .write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\nDate: "));
        assert!(text.ends_with("\r\nConnection: close\r\n\r\n"));
        for field in [
            "\r\nContent-Type: text/plain\r\n",
            "\r\nContent-Length: 12\r\n",
            "\r\nContent-Encoding: gzip\r\n",
            "\r\nVary: Accept-Encoding\r\n",
            "\r\nAllow: GET, HEAD\r\n",
            "\r\nRetry-After: 1\r\n",
        ] {
            assert!(text.contains(field), "{field:?} in {text:?}");
        }
    }
}
