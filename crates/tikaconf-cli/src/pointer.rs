//! RFC 6901 JSON Pointers as the commands take them: checked before connecting,
//! so that a typo fails fast with exit code 2 whether or not a deployment is
//! reachable, and resolved the way the library's `Config::at` resolves them
//! (`serde_json`'s `Value::pointer`), so that `get` and a bot agree on what a
//! pointer names.

use serde_json::Value;

use crate::failure::Failure;

/// Checks RFC 6901 syntax: `""`, or `/`-separated tokens where `~` is only ever
/// `~0` or `~1`.
pub fn check(pointer: &str) -> Result<(), Failure> {
    let bad = |why: &str| {
        Failure::bad_input(anyhow::anyhow!(
            "bad JSON Pointer {pointer:?}: {why} (example: /commands/!hello)"
        ))
    };
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(bad("it must be empty or start with '/'"));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(bad("'~' must be followed by 0 or 1"));
        }
    }
    Ok(())
}

/// The value at `pointer` (already checked), if it resolves.
pub fn resolve<'a>(document: &'a Value, pointer: &str) -> Option<&'a Value> {
    document.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointers_follow_rfc_6901() {
        for good in [
            "",
            "/",
            "/a",
            "/a/b",
            "/a~1b",
            "/~0",
            "/commands/!hello",
            "/0",
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in ["a", "a/b", "/~", "/~2", "/a~"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolving_tells_absent_from_null() {
        let doc = json!({"a/b": {"~": [10, null]}, "n": null});
        assert_eq!(resolve(&doc, ""), Some(&doc));
        assert_eq!(resolve(&doc, "/a~1b/~0/0"), Some(&json!(10)));
        assert_eq!(resolve(&doc, "/a~1b/~0/1"), Some(&Value::Null));
        assert_eq!(resolve(&doc, "/n"), Some(&Value::Null));
        assert_eq!(resolve(&doc, "/a~1b/~0/2"), None);
        assert_eq!(resolve(&doc, "/missing"), None);
        assert_eq!(resolve(&doc, "/n/deeper"), None);
    }
}
