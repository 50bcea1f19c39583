//! `tikaconf get`: the current document of a configuration, or the part of it at
//! a JSON Pointer, then exit.
//!
//! Pretty JSON by default because a person usually reads it (and always, not
//! only on a terminal, so that a command prints the same wherever its output
//! goes); `-o json` gives the canonical bytes (RFC 8785), which are what the
//! hashes are computed over and so what to compare or pipe into other tools;
//! `-o raw` gives a string's contents, for `$(tikaconf get -o raw ROOT /x)`.
//!
//! A pointer that does not resolve is its own exit code (8, see
//! `Code::NotFound`), distinct from a `null` value, which prints `null`.
//! `--with-head` adds the head the value was read at, which is what `--if-head`
//! on a write needs for a read-modify-write (etcd's revision, NATS KV's
//! revision).

use futures_util::StreamExt;
use serde_json::json;
use tikaconf::{Change, Config, Event};

use crate::cli::{GetArgs, Global};
use crate::failure::Failure;
use crate::{output, pointer, session};

/// `get ROOT [POINTER] [-o FORMAT] [--with-head]`.
pub async fn run(global: &Global, args: &GetArgs) -> Result<(), Failure> {
    let at = args.pointer.as_deref().unwrap_or("");
    pointer::check(at)?;
    let config = session::follow(global, &args.root).await?;
    let current = current(&config).await?;
    let value = pointer::resolve(&current.document, at).ok_or_else(|| {
        Failure::not_found(anyhow::anyhow!(
            "no value at {at:?} in the document of {} (head {}, height {})",
            config.root(),
            current.head,
            current.height
        ))
    })?;
    if args.with_head {
        // One object, so that head and value cannot be taken from different reads.
        let record =
            json!({"head": current.head.to_hex(), "height": current.height, "value": value});
        output::line(output::value(&record, args.format())?)
    } else {
        output::line(output::value(value, args.format())?)
    }
}

/// The document with the head and height it belongs to, read at one moment: the
/// first item of the library's watch, so that the head named in a message is the
/// one the pointer was looked up in even if a change lands meanwhile.
async fn current(config: &Config) -> Result<Change, Failure> {
    match config.watch().next().await {
        Some(Event::Change(change)) => Ok(change),
        _ => Err(Failure::other(anyhow::anyhow!(
            "the configuration was unfollowed while reading it"
        ))),
    }
}
