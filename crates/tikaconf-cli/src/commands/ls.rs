//! `tikaconf ls`: the roots storage holds, with their heads, page after page.
//!
//! The API pages its listing by cursor (`GET /v1/roots`); `ls` follows the
//! cursor until the last page, printing as it goes, so that a large fleet's
//! listing starts at once and never sits whole in memory (but with `--json`,
//! which prints one array at the end). `--limit` is the page size, for a
//! server or a link that prefers small answers.

use serde_json::Value;
use tikaconf::proto::canonical;

use crate::cli::{Global, LsArgs};
use crate::failure::Failure;
use crate::output::{self, Style};
use crate::remote::{ListQuery, Listing, Remote};

/// `ls [--limit N] [--platform P]`.
pub async fn run(global: &Global, args: &LsArgs) -> Result<(), Failure> {
    if let Some(limit) = args.limit
        && !(1..=1000).contains(&limit)
    {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--limit is 1 to 1000, not {limit}"
        )));
    }
    let style = Style::of(global);
    let remote = Remote::connect(global).await?;
    let mut query = ListQuery {
        limit: args.limit,
        cursor: None,
        platform: args.platform.clone(),
    };
    let mut all = Vec::new();
    let mut listed = 0usize;
    if style == Style::Human {
        output::line(format!(
            "{:<64}  {:>6}  {:<12}  CONNECTION",
            "ROOT", "HEIGHT", "HEAD"
        ))?;
    }
    loop {
        let page = remote.list(&query).await?;
        listed += page.roots.len();
        match style {
            Style::Json => all.extend(page.roots),
            Style::Human => {
                for root in &page.roots {
                    output::line(human(root))?;
                }
            }
            Style::Plain => {
                for root in &page.roots {
                    output::line(plain(root))?;
                }
            }
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    match style {
        Style::Json => output::json(&serde_json::to_value(all).map_err(Failure::other)?),
        Style::Human if listed == 0 => output::line("(no roots)"),
        _ => Ok(()),
    }
}

/// `ROOT\tHEAD\tHEIGHT\tCONNECTION` (compact JSON, `-` when unknown).
fn plain(root: &Listing) -> String {
    let connection = match &root.connection {
        Some(c) => String::from_utf8_lossy(&canonical::to_vec(c)).into_owned(),
        None => "-".to_owned(),
    };
    format!(
        "{}\t{}\t{}\t{connection}",
        root.root, root.head, root.height
    )
}

/// Aligned columns, the head shortened and the connection as a ROOT a
/// person can type (`twitch:#channel`) where there is one.
fn human(root: &Listing) -> String {
    let head = root.head.get(..12).unwrap_or(&root.head);
    let connection = match &root.connection {
        None => "-".to_owned(),
        Some(c) => match (c.get("platform").and_then(Value::as_str), c.get("channel")) {
            (Some("twitch"), Some(Value::String(channel))) => format!("twitch:{channel}"),
            _ => String::from_utf8_lossy(&canonical::to_vec(c)).into_owned(),
        },
    };
    format!(
        "{:<64}  {:>6}  {head:<12}  {connection}",
        root.root, root.height
    )
}
