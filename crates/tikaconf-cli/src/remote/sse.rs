//! A Server-Sent Events parser (the WHATWG "event stream interpretation"),
//! without I/O: bytes go in as they arrive, whole events come out.
//!
//! Why our own: the format is a page of rules, and the crates that parse it
//! either bring their own HTTP client or an `EventSource` with its own retry
//! policy, where `watch` needs its reconnection (with `Last-Event-ID`) under
//! its own control. The rules kept: lines end in CRLF, LF or CR (a CRLF may be
//! split across two chunks); `field: value` loses one space after the colon;
//! `data` lines join with `\n`; a line starting with `:` is a comment (the
//! server's heartbeat); an empty line dispatches the event, unless it has no
//! data; `id` is remembered across events and ignored if it holds NUL; a
//! leading byte-order mark is skipped; unknown fields are ignored.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event` field; `message` when the event had none.
    pub event: String,
    /// The `data` lines, joined with `\n`.
    pub data: String,
    /// The last event ID seen so far (the stream's, not only this event's).
    pub id: Option<String>,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// The last byte fed was a CR: an LF right after it ends nothing.
    after_cr: bool,
    /// The stream's first line was seen (the BOM check is done).
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Parses `bytes`, returning the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.partial);
                    if let Some(event) = self.line(&line) {
                        events.push(event);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.partial.push(b);
                }
            }
        }
        events
    }

    fn line(&mut self, mut line: &[u8]) -> Option<Event> {
        if !std::mem::replace(&mut self.started, true) {
            // A byte-order mark may only open the stream (it can arrive
            // split over chunks, so it is looked for in the first line).
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            // `retry` and anything else: the watch has its own backoff.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::new();
        chunks.iter().flat_map(|c| parser.feed(c)).collect()
    }

    fn event(event: &str, data: &str, id: Option<&str>) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn fields_events_and_comments() {
        let stream = b": heartbeat\n\nevent: snapshot\nid: h1\ndata: {\"a\":1}\n\n\
                       :another comment\nevent:change\ndata:x\ndata: y\ndata\n\n";
        assert_eq!(
            all(&[stream]),
            vec![
                event("snapshot", "{\"a\":1}", Some("h1")),
                // The id carries over; data lines join with \n; `data` alone
                // is an empty line of data; no space after the colon is fine.
                event("change", "x\ny\n", Some("h1")),
            ]
        );
    }

    #[test]
    fn any_line_ending_and_any_split() {
        let stream = b"\xEF\xBB\xBFevent: e\r\ndata: one\rdata: two\n\r\nid: 7\ndata: 3\n\n";
        let whole = all(&[stream]);
        assert_eq!(
            whole,
            vec![
                event("e", "one\ntwo", None),
                event("message", "3", Some("7"))
            ]
        );
        // Byte by byte, a CRLF split between two chunks included.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
    }

    #[test]
    fn no_data_no_event_and_no_nul_ids() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"event: x\nid: a\n\n").is_empty());
        // An ID with NUL is ignored; so are `retry` and unknown fields.
        assert!(parser.feed(b"id: b\0c\nretry: 10\nunknown: z\n").is_empty());
        // An unfinished event is not dispatched.
        assert!(parser.feed(b"data: half").is_empty());
        assert_eq!(
            parser.feed(b"\n\n"),
            vec![event("message", "half", Some("a"))]
        );
    }
}
