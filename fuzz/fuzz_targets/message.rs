//! Fuzz target `message`: arbitrary (channel, payload) inputs through the decoders, a loaded follower and a loaded storage engine.
//!
//! The properties live in `tikaconf_fuzz::check_message` (fuzz/src/lib.rs), shared
//! with `crates/tikaconf-proto/tests/fuzz_corpus.rs`, which replays this target's
//! corpus on stable Rust. Each input runs on a thread with a node's 2 MiB stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    tikaconf_fuzz::on_node_stack(move || tikaconf_fuzz::check_message(&data));
});
