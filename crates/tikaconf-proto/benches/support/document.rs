//! The document the micro-benchmarks and the `decode_profile` example measure,
//! in one place so that criterion's figures and callgrind's counts are about
//! the same bytes.

use serde_json::{Map, Value, json};

/// A document of about `size` canonical bytes: a map of ~100-byte commands,
/// the shape of a chat bot's configuration.
pub fn document(size: usize) -> Value {
    let mut commands = Map::new();
    let mut total = 16;
    let mut i = 0usize;
    while total + 110 < size.max(120) {
        let key = format!("!cmd{i:06}");
        let text: String = (0..90)
            .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
            .collect();
        total += key.len() + text.len() + 6;
        commands.insert(key, Value::String(text));
        i += 1;
    }
    json!({ "commands": commands, "prefix": "!" })
}
