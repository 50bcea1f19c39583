//! `tikaconf get`: the current document of a configuration, then exit.
//!
//! Pretty JSON by default because a person usually reads it; `--compact` gives the
//! canonical bytes (RFC 8785), which are what the hashes are computed over and so
//! what to compare or pipe into other tools.

use tikaconf::proto::canonical;

use crate::cli::Global;
use crate::failure::Failure;
use crate::{output, session};

pub async fn run(global: &Global, root: &str, compact: bool) -> Result<(), Failure> {
    let config = session::follow(global, root).await?;
    let document = config.document();
    if compact {
        output::line(canonical::to_vec(&document))
    } else {
        let pretty = serde_json::to_string_pretty(&*document).map_err(Failure::other)?;
        output::line(pretty)
    }
}
