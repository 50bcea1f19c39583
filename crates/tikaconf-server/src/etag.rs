//! Entity tags: a configuration's `ETag` is its head hash, strong and quoted,
//! so that `If-Match` is a compare-and-set on the head and `If-None-Match` a
//! cheap "has it changed?".

use axum::http::{HeaderMap, HeaderValue, header};
use tikaconf::Hash;

use crate::problem::ApiError;

/// The name of the header carrying the head's height.
pub const HEIGHT_HEADER: &str = "tikaconf-height";

/// `"<hex>"`.
pub(crate) fn etag(head: Hash) -> HeaderValue {
    HeaderValue::try_from(format!("\"{head}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// What a conditional header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// `*`: any current version.
    Any,
    /// One of these heads.
    Heads(Vec<Hash>),
}

impl Condition {
    pub(crate) fn matches(&self, head: Hash) -> bool {
        match self {
            Condition::Any => true,
            Condition::Heads(heads) => heads.contains(&head),
        }
    }
}

/// Reads `If-Match` (`weak` false: weak tags never match, RFC 9110 13.1.1)
/// or `If-None-Match` (`weak` true: compared weakly, 13.1.2). A tag that is
/// not a head hash matches nothing (it names no version of ours); a header
/// that is not a list of entity tags is malformed (400).
pub(crate) fn condition(
    headers: &HeaderMap,
    name: header::HeaderName,
    weak: bool,
) -> Result<Option<Condition>, ApiError> {
    let mut heads = Vec::new();
    let mut any = false;
    let mut present = false;
    for value in headers.get_all(&name) {
        present = true;
        let text = value
            .to_str()
            .map_err(|_| ApiError::BadRequest(format!("{name} is not ASCII")))?;
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix('*') {
                any = true;
                rest = after;
                continue;
            }
            let (is_weak, quoted) = match rest.strip_prefix("W/") {
                Some(after) => (true, after),
                None => (false, rest),
            };
            // An entity tag's characters never include `"`, but may include
            // `,`: the tag ends at the next quote, not at the next comma.
            let (inner, after) = quoted
                .strip_prefix('"')
                .and_then(|t| t.split_once('"'))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("{name}: {rest:?} is not a quoted entity tag"))
                })?;
            if !after.is_empty() && !after.starts_with([' ', '\t', ',']) {
                return Err(ApiError::BadRequest(format!(
                    "{name}: {rest:?} is not a list of quoted entity tags"
                )));
            }
            rest = after;
            if is_weak && !weak {
                continue;
            }
            if let Ok(head) = inner.parse::<Hash>() {
                heads.push(head);
            }
        }
    }
    Ok(match (present, any) {
        (false, _) => None,
        (true, true) => Some(Condition::Any),
        (true, false) => Some(Condition::Heads(heads)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str, weak: bool) -> Result<Option<Condition>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
        condition(&headers, header::IF_MATCH, weak)
    }

    #[test]
    fn reads_lists_stars_and_weak_tags() {
        let h = Hash::from_bytes([7; 32]);
        let one = format!("\"{h}\"");
        assert_eq!(parse(&one, false).unwrap(), Some(Condition::Heads(vec![h])));
        assert_eq!(parse("*", false).unwrap(), Some(Condition::Any));
        let weak = format!("W/\"{h}\", \"other\"");
        assert_eq!(parse(&weak, false).unwrap(), Some(Condition::Heads(vec![])));
        assert_eq!(parse(&weak, true).unwrap(), Some(Condition::Heads(vec![h])));
        assert!(parse("unquoted", false).is_err());
        assert!(parse("\"a\"b", false).is_err());
        // A comma inside a tag belongs to the tag.
        let comma = format!("\"x,y\" , \"{h}\",,");
        assert_eq!(
            parse(&comma, false).unwrap(),
            Some(Condition::Heads(vec![h]))
        );
        assert_eq!(parse("", false).unwrap(), Some(Condition::Heads(vec![])));
        assert_eq!(
            condition(&HeaderMap::new(), header::IF_MATCH, false).unwrap(),
            None
        );
    }
}
