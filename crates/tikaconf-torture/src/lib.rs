//! The torture suite of issue 3: a tikaconf deployment on loopback, run under
//! injected faults and load, with its invariants checked after every run.
//!
//! Unit and integration tests show that each mechanism works; this suite asks
//! whether the promises hold when everything goes wrong at once, on real
//! processes: storage nodes SIGKILLed mid-stream, redis-server restarted, links
//! slowed, cut, partitioned and stalled by a proxy per node, writers racing and
//! publishing back to back, followers coming and going, and 1,000 followers under
//! sustained writes. Every run records what the application saw and a checker
//! decides, so a failure comes with its seed and a command to reproduce it.
//!
//! Modules: [`schedules`] (the named runs and their engine), [`faults`] (seeded
//! injection), [`deploy`] (redis, storage processes, members behind proxies),
//! [`workload`] (writers), [`history`] and [`checker`] (the record and the
//! invariants), [`load`], [`flood`] (a hostile client's flood, with every
//! node's memory and CPU bounded), [`report`] (docs/RELIABILITY.md), [`suite`],
//! [`node`] (storage nodes as child processes).

// An unpublished binary's internals (`publish = false`), read with the suite's own
// source: the workspace's missing_docs rule is for the published crates' API.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

pub mod bad_input;
pub mod checker;
pub mod deploy;
pub mod faults;
pub mod flood;
pub mod history;
pub mod load;
pub mod node;
pub mod report;
pub mod schedules;
pub mod suite;
pub mod workload;

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts every panic of this process (on any thread or task), keeping the
/// default message. Tokio catches a task's panic, so without this a panicking
/// follower hub would go unnoticed.
pub fn install_panic_counter() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

/// Panics counted so far.
pub fn panics() -> u64 {
    PANICS.load(Ordering::SeqCst)
}
