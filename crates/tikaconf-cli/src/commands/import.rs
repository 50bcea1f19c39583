//! `tikaconf import`: a JSON, TOML or YAML file becomes the whole new
//! document.
//!
//! Published as the RFC 6902 difference from the current document
//! (`tikaconf::diff`), so that followers get an ordinary patch as small as
//! the change, and only on the head the difference was computed from: a
//! write that lands in between makes the import exit 4 rather than silently
//! undo it. `--if-head` pins an earlier head (`export --json` prints it), for
//! a file edited by hand since.

use std::path::Path;

use tikaconf::Hash;

use crate::cli::{DocFormat, Global};
use crate::commands::write;
use crate::failure::Failure;
use crate::remote::{self, Remote};
use crate::{formats, input, session};

/// `import ROOT FILE|- [--format F] [--if-head HASH]`.
pub async fn run(
    global: &Global,
    root: &str,
    file: &Path,
    format: Option<DocFormat>,
    if_head: Option<Hash>,
) -> Result<(), Failure> {
    let stdin = input::is_stdin(file);
    let format = match format.or_else(|| formats::from_extension(file)) {
        Some(format) => format,
        None if stdin => DocFormat::Json,
        None => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "cannot tell the format of {} from its extension: give --format json|toml|yaml",
                file.display()
            )));
        }
    };
    let (bytes, name) = input::read(file)?;
    let document = formats::parse(&bytes, format)
        .map_err(|f| f.context(format!("{name} as {format:?}").to_lowercase()))?;
    let root = session::parse_root(root)?;
    let target = Remote::connect(global).await?.open(root).await?;
    let base = target.read().await?;
    if let Some(expected) = if_head
        && expected != base.head
    {
        return Err(remote::stale(expected, base.head, Some(base.height)));
    }
    let ops = tikaconf::diff(&base.document, &document);
    let outcome = write::commit(&target, ops, Some(base.head)).await?;
    write::report(global, &outcome)
}
