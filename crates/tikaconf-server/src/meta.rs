//! The `meta` every write through the API carries: who (`author`), when
//! (`time`, RFC 3339 UTC) and why (`message`), from the request's
//! `Tikaconf-Author` and `Tikaconf-Message` headers.
//!
//! Header values are ASCII; a client sends UTF-8 text percent-encoded
//! ([`encode_header`]), and the API decodes it ([`decode_header`]). Public so
//! that the CLI writes the same headers and the same `time` over either
//! transport.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// The request header naming the author of a write.
pub const AUTHOR_HEADER: &str = "tikaconf-author";
/// The request header carrying a write's message.
pub const MESSAGE_HEADER: &str = "tikaconf-message";

/// Longest author or message the API accepts, in bytes (after decoding): a
/// `meta` is part of the patch, which must fit in one message.
pub const MAX_META_TEXT: usize = 4096;

/// `meta` for a write: `author`, `time` (now), and `message` when there is one.
pub fn meta(author: &str, message: Option<&str>) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("author".into(), Value::String(author.to_owned()));
    meta.insert("time".into(), Value::String(rfc3339(SystemTime::now())));
    if let Some(message) = message {
        meta.insert("message".into(), Value::String(message.to_owned()));
    }
    meta
}

/// `time` as RFC 3339 in UTC with second precision (`2026-12-06T22:38:16Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `text` as a header value: printable ASCII but `%` as is, every other byte
/// of its UTF-8 as `%XX`.
pub fn encode_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A header value written by [`encode_header`] (or plain ASCII) back to
/// text. Lenient, as a header a person typed may be: a `%` not followed by
/// two hex digits stays as it is, and bytes that are not UTF-8 become U+FFFD.
pub fn decode_header(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let escaped = (value[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(value[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_596_696);
        assert_eq!(rfc3339(t), "2026-12-06T22:38:16Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn header_text_round_trips() {
        for text in ["plain", "100% sure", "héllo — ✓", "line\nbreak", ""] {
            let encoded = encode_header(text);
            assert!(encoded.bytes().all(|b| (0x20..0x7f).contains(&b)));
            assert_eq!(decode_header(encoded.as_bytes()), text);
        }
        assert_eq!(decode_header(b"%4"), "%4");
        assert_eq!(decode_header(b"50%zz"), "50%zz");
        assert_eq!(decode_header(b"%FF"), "\u{FFFD}");
    }
}
