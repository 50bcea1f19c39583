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
//! revision). `--json` prints `{"head","height","root","value"}`.

use serde_json::json;

use crate::cli::{GetArgs, Global};
use crate::failure::Failure;
use crate::output::{self, Style};
use crate::remote::Remote;
use crate::{pointer, session};

/// `get ROOT [POINTER] [-o FORMAT] [--with-head]`.
pub async fn run(global: &Global, args: &GetArgs) -> Result<(), Failure> {
    let at = args.pointer.as_deref().unwrap_or("");
    pointer::check(at)?;
    let root = session::parse_root(&args.root)?;
    let target = Remote::connect(global).await?.open(root).await?;
    // The whole document, resolved here rather than by the server's
    // `?pointer=`: the head is then known for the message of an absent
    // pointer, and both transports resolve pointers the same way.
    let current = target.read().await?;
    let value = pointer::resolve(&current.document, at).ok_or_else(|| {
        Failure::not_found(anyhow::anyhow!(
            "no value at {at:?} in the document of {} (head {}, height {})",
            target.root(),
            current.head,
            current.height
        ))
    })?;
    if Style::of(global) == Style::Json {
        output::json(&json!({
            "root": target.root().to_hex(),
            "head": current.head.to_hex(),
            "height": current.height,
            "value": value,
        }))
    } else if args.with_head {
        // One object, so that head and value cannot be taken from different reads.
        let record =
            json!({"head": current.head.to_hex(), "height": current.height, "value": value});
        output::line(output::value(&record, args.format())?)
    } else {
        output::line(output::value(value, args.format())?)
    }
}
