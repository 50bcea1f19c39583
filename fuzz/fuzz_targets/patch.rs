//! Fuzz target `patch`: RFC 6902 ops read and applied to an arbitrary document: never a panic, and a failed patch changes nothing.
//!
//! The properties live in `tikaconf_fuzz::check_patch` (fuzz/src/lib.rs), shared
//! with `crates/tikaconf-proto/tests/fuzz_corpus.rs`, which replays this target's
//! corpus on stable Rust. Each input runs on a thread with a node's 2 MiB stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    tikaconf_fuzz::on_node_stack(move || tikaconf_fuzz::check_patch(&data));
});
