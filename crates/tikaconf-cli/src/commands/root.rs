//! `tikaconf root`: the root hash of a connection, computed locally.
//!
//! A root hash is derived from connection info alone, so an operator can learn the
//! hash of a channel (to follow it by hash, or to find it in storage) without any
//! deployment at hand.

use tikaconf::RootConfig;
use tikaconf::proto::{Limits, canonical, json};

use crate::cli::{Connection, Global, RootArgs};
use crate::failure::Failure;
use crate::output;

pub fn run(global: &Global, args: &RootArgs) -> Result<(), Failure> {
    let root = match &args.connection {
        Connection::Twitch { channel } => RootConfig::twitch(channel)
            .map_err(|e| Failure::bad_input(e).context(format!("channel {channel:?}")))?,
        Connection::Json { connection } => {
            let value = json::parse_strict(connection.as_bytes(), Limits::MAX_DEPTH_CEILING)
                .map_err(|e| Failure::bad_input(e).context("connection info"))?;
            RootConfig::from_connection(value)
                .map_err(|e| Failure::bad_input(e).context("connection info"))?
        }
    };
    if global.json {
        output::line(canonical::to_vec(root.value()))
    } else {
        output::line(root.hash().to_hex())
    }
}
