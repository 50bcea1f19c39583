//! Micro-benchmarks of the protocol's per-message work: canonical encoding,
//! hashing, decoding + validating a patch message (beside serde_json's plain
//! parse of the same bytes, as a floor), and applying a patch, on
//! documents of about 200 B, 10 KiB and 1 MiB.
//!
//! These are the CPU costs every follower pays for every change (decode,
//! apply) and every writer and storage node pays per write (encode, hash).
//! `tikaconf-bench` measures them end to end; these isolate them, so that a
//! regression or an optimisation shows up here first. Run with
//! `cargo bench -p tikaconf-proto --bench proto`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tikaconf_proto::{Hash, Limits, Message, Patch, RootConfig, Snapshot, canonical};

#[path = "support/document.rs"]
mod support;
use support::document;

const SIZES: [(&str, usize); 3] = [("200B", 200), ("10KiB", 10 * 1024), ("1MiB", 1_000_000)];

fn bench(c: &mut Criterion) {
    let root = RootConfig::twitch("#bench").expect("valid channel");
    let limits = Limits::default();

    let mut encode = c.benchmark_group("canonical_encode");
    for (name, size) in SIZES {
        let doc = document(size);
        encode.throughput(Throughput::Bytes(canonical::encoded_len(&doc) as u64));
        encode.bench_with_input(BenchmarkId::from_parameter(name), &doc, |b, doc| {
            b.iter(|| canonical::to_vec(black_box(doc)))
        });
    }
    encode.finish();

    let mut hash = c.benchmark_group("hash");
    for (name, size) in SIZES {
        let bytes = canonical::to_vec(&document(size));
        hash.throughput(Throughput::Bytes(bytes.len() as u64));
        hash.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| Hash::of_canonical_bytes(black_box(bytes)))
        });
    }
    hash.finish();

    // A patch message carrying a document of the size as one op's value: what a
    // follower decodes (strict parse, normalization, hash, ops) per change.
    let mut decode = c.benchmark_group("decode_validate_patch");
    for (name, size) in SIZES {
        let ops = json!([{"op": "add", "path": "/commands", "value": document(size)["commands"]}]);
        let patch = Patch::build(root.hash(), root.hash(), 0, ops, None).expect("patch builds");
        let bytes = patch.encoded.clone();
        decode.throughput(Throughput::Bytes(bytes.len() as u64));
        decode.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| Message::decode(black_box(bytes), &limits).expect("decodes"))
        });
        // The floor: serde_json's general DOM parser on the same bytes, which
        // checks none of the protocol's rules (duplicate keys, number range,
        // depth) and computes no hash. How far decode stays above this is what
        // the protocol's checks cost.
        decode.bench_with_input(
            BenchmarkId::new("serde_json_floor", name),
            &bytes,
            |b, bytes| {
                b.iter(|| serde_json::from_slice::<Value>(black_box(bytes)).expect("parses"))
            },
        );
    }
    decode.finish();

    // A snapshot message carrying a document of the size: what a follower
    // decodes on a cold load or a resync.
    let mut snapshot = c.benchmark_group("decode_validate_snapshot");
    for (name, size) in SIZES {
        let head = Hash::of_canonical_bytes(b"a head");
        let bytes = Snapshot::new(root.hash(), head, 7, document(size)).encoded;
        snapshot.throughput(Throughput::Bytes(bytes.len() as u64));
        snapshot.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| Message::decode(black_box(bytes), &limits).expect("decodes"))
        });
    }
    snapshot.finish();

    // A one-op change applied to a document of the size: `Ops::apply`, which
    // works on a copy of the document (all or nothing). The op is idempotent, so
    // one document serves every iteration.
    let mut apply = c.benchmark_group("apply_patch");
    for (name, size) in SIZES {
        let doc = document(size);
        let ops = json!([{"op": "replace", "path": "/prefix", "value": "?"}]);
        let patch = Patch::build(root.hash(), root.hash(), 0, ops, None).expect("patch builds");
        apply.throughput(Throughput::Bytes(canonical::encoded_len(&doc) as u64));
        let mut doc = doc;
        apply.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| patch.ops.apply(black_box(&mut doc)).expect("applies"))
        });
    }
    apply.finish();

    // Issue 11's worst case for the cost of a hostile patch: a document near
    // half the size cap and a patch of `copy`/`remove` pairs of most of it. Every
    // pair is valid on its own, so before the per-patch work budget every node
    // copied (and measured) the whole subtree once per pair, ops x document;
    // with the budget the patch is refused after about two copies. The figure
    // is the time to *reach the verdict*, accepted (old) or refused (new).
    let mut hostile = c.benchmark_group("hostile_patch");
    for pairs in [16usize, 128] {
        let big = document(480_000)["commands"].clone();
        let doc = json!({ "big": big, "prefix": "!" });
        let ops: Vec<Value> = (0..pairs)
            .flat_map(|_| {
                [
                    json!({"op": "copy", "from": "/big", "path": "/copy"}),
                    json!({"op": "remove", "path": "/copy"}),
                ]
            })
            .collect();
        let patch = Patch::build(root.hash(), root.hash(), 0, Value::Array(ops), None)
            .expect("patch builds");
        let bound = tikaconf_proto::limits::DocBound::measure(&doc);
        hostile.bench_function(BenchmarkId::new("copy_remove_pairs_480KB", pairs), |b| {
            b.iter(|| {
                black_box(patch.apply_with_bound(root.hash(), 0, black_box(&doc), bound, &limits))
                    .is_ok()
            })
        });
    }
    hostile.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
