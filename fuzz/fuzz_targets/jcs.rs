//! Fuzz target `jcs`: strict JSON parsing and the RFC 8785 canonical encoder: parse, encode, parse again must round-trip.
//!
//! The properties live in `tikaconf_fuzz::check_jcs` (fuzz/src/lib.rs), shared
//! with `crates/tikaconf-proto/tests/fuzz_corpus.rs`, which replays this target's
//! corpus on stable Rust. Each input runs on a thread with a node's 2 MiB stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    tikaconf_fuzz::on_node_stack(move || tikaconf_fuzz::check_jcs(&data));
});
