//! `tikaconf verify ROOT`: the stored chain of a configuration, checked by
//! the server (`GET /v1/configs/{root}/verify`) and told in one line, or the
//! first broken link and exit 9.
//!
//! Over `--server` only, like `log`: the chain lives in a storage node's
//! store. The check itself is the protocol crate's; this only prints it.

use serde_json::Value;

use crate::commands::history;
use crate::failure::{Code, Failure};
use crate::output::{self, Style};

/// `verify ROOT`.
pub async fn run(global: &crate::cli::Global, root: &str) -> Result<(), Failure> {
    let target = history::open(global, root, "verify").await?;
    let report = target.verify().await?;
    let ok = report["ok"].as_bool().unwrap_or(false);
    match Style::of(global) {
        Style::Json => output::json(&report)?,
        Style::Plain | Style::Human if ok => output::line(summary(&report))?,
        Style::Plain | Style::Human => {}
    }
    if ok {
        return Ok(());
    }
    Err(Failure::new(
        Code::Broken,
        anyhow::anyhow!("{}", broken(&report)),
    ))
}

/// `ok: N patches from height A to B, ...`: what was checked and how.
fn summary(report: &Value) -> String {
    let checked = report["checked"].as_u64().unwrap_or(0);
    let height = report["height"].as_u64().unwrap_or(0);
    let head = report["head"].as_str().unwrap_or("-");
    let mut text = match report["oldest"].as_u64() {
        None if height == 0 => return format!("ok: no patches yet, the head is the root {head}"),
        None => format!("ok: no patches kept; head {head} at height {height} not checked"),
        Some(oldest) => format!(
            "ok: {checked} patch{} from height {oldest} to {height}, head {head}",
            if checked == 1 { "" } else { "es" }
        ),
    };
    let replayed = report["replayed"].as_u64().unwrap_or(0);
    let linkage = report["linkage_only"].as_u64().unwrap_or(0);
    if report["anchored"] == true && report["document_checked"] == true {
        text.push_str(", replayed from the root: the document matches");
    } else if report["anchored"] == true {
        text.push_str(", linked to the root (registration not kept: document not replayed)");
    } else if checked > 0 {
        text.push_str(&format!(
            ", {replayed} replayed and {linkage} linkage only (not every patch back to the root is kept)"
        ));
    }
    let gaps = report["gap_count"].as_u64().unwrap_or(0);
    if gaps > 0 {
        let listed: Vec<String> = report["gaps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|gap| match (gap["from"].as_u64(), gap["to"].as_u64()) {
                (Some(from), Some(to)) if from == to => from.to_string(),
                (Some(from), Some(to)) => format!("{from}-{to}"),
                _ => "?".to_owned(),
            })
            .collect();
        text.push_str(&format!(
            ", {gaps} gap{} (heights {}{})",
            if gaps == 1 { "" } else { "s" },
            listed.join(", "),
            if gaps > listed.len() as u64 {
                ", ..."
            } else {
                ""
            }
        ));
    }
    if report["truncated"] == true {
        text.push_str(", older patches kept but not checked");
    }
    text
}

/// The first broken link, for stderr.
fn broken(report: &Value) -> String {
    let link = &report["broken"];
    let hash = link["hash"].as_str().unwrap_or("(does not decode)");
    format!(
        "broken at height {} (stored {hash}): {} ({})",
        link["height"],
        link["detail"].as_str().unwrap_or("-"),
        link["reason"].as_str().unwrap_or("-"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_summary_says_what_was_checked() {
        let whole = json!({"ok": true, "head": "h", "height": 4, "oldest": 1, "checked": 4,
            "replayed": 4, "linkage_only": 0, "gaps": [], "gap_count": 0,
            "anchored": true, "document_checked": true, "truncated": false});
        assert_eq!(
            summary(&whole),
            "ok: 4 patches from height 1 to 4, head h, replayed from the root: the document matches"
        );
        let gaps = json!({"ok": true, "head": "h", "height": 9, "oldest": 3, "checked": 5,
            "replayed": 0, "linkage_only": 5, "gaps": [{"from": 5, "to": 6}, {"from": 8, "to": 8}],
            "gap_count": 2, "anchored": false, "document_checked": false, "truncated": false});
        assert_eq!(
            summary(&gaps),
            "ok: 5 patches from height 3 to 9, head h, 0 replayed and 5 linkage only \
             (not every patch back to the root is kept), 2 gaps (heights 5-6, 8)"
        );
        let root = json!({"ok": true, "head": "r", "height": 0, "oldest": null, "checked": 0,
            "anchored": true, "document_checked": true});
        assert_eq!(summary(&root), "ok: no patches yet, the head is the root r");
    }

    #[test]
    fn a_broken_link_names_height_hash_and_reason() {
        let report = json!({"ok": false, "broken": {"height": 2, "hash": "ab",
            "reason": "altered", "detail": "it hashes to ab"}});
        assert_eq!(
            broken(&report),
            "broken at height 2 (stored ab): it hashes to ab (altered)"
        );
    }
}
