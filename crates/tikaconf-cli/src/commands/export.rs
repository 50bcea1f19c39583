//! `tikaconf export`: the document of a configuration as JSON, TOML or YAML,
//! for people to read or edit and for tools that want those formats (what
//! `import` takes back).

use serde_json::json;

use crate::cli::{DocFormat, Global};
use crate::failure::Failure;
use crate::output::{self, Style};
use crate::remote::Remote;
use crate::{formats, session};

/// `export ROOT [--format F]`.
pub async fn run(global: &Global, root: &str, format: Option<DocFormat>) -> Result<(), Failure> {
    let json = Style::of(global) == Style::Json;
    if json && format.is_some_and(|f| f != DocFormat::Json) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--json prints {{\"document\",\"head\",\"height\",\"root\"}}; leave out --format"
        )));
    }
    let root = session::parse_root(root)?;
    let target = Remote::connect(global).await?.open(root).await?;
    let current = target.read().await?;
    if json {
        return output::json(&json!({
            "root": target.root().to_hex(),
            "head": current.head.to_hex(),
            "height": current.height,
            "document": &*current.document,
        }));
    }
    let text = formats::render(&current.document, format.unwrap_or(DocFormat::Json))
        .map_err(|f| f.context(format!("head {}", current.head)))?;
    output::line(text.trim_end_matches('\n'))
}
