//! The writers of a schedule run: each writes unique keys and records how each
//! write ended.
//!
//! Each patch adds two keys, `w<writer>-<seq>` and `t<writer>-<seq>`, so the
//! final document shows for every write whether it landed, and a half-applied
//! patch shows as one key without the other. Two ways of writing:
//!
//! - **await**: `submit` and wait for the outcome before the next write, as an
//!   application does; several such writers on one root race (many conflicts).
//! - **back-to-back**: publish the next patch as soon as the previous one is
//!   applied locally, without waiting for storage; followers hopping from one
//!   head's channel to the next miss patches (the hop gap) and must heal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tikaconf::proto::WriteOutcome;
use tikaconf::{Config, WriteError};

use crate::history::{Outcome, Recorder, Refusal, WriteRecord, key_of, twin_of};

/// Longer than any write may take (the write timeout is 5 s): a write still
/// pending after this is a hang, which is a failure of its own.
pub const HANG: Duration = Duration::from_secs(30);

/// How many back-to-back writes may await their outcome at once.
const IN_FLIGHT: usize = 8;

/// Counters the run reports besides the history.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub hangs: AtomicU64,
}

/// Runs one writer until `stop`: `writer` is its number, `root` its root's index.
/// While `held` is set it starts no new write.
#[allow(clippy::too_many_arguments)]
pub async fn write_loop(
    config: Config,
    writer: usize,
    root: usize,
    back_to_back: bool,
    pace: Duration,
    recorder: Recorder,
    stats: Arc<WriterStats>,
    stop: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
) {
    let mut seq = 0u64;
    let mut pending = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        if held.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        seq += 1;
        let key = key_of(writer, seq);
        let ops = json!([
            {"op": "add", "path": format!("/{key}"), "value": seq},
            {"op": "add", "path": format!("/{}", twin_of(&key)), "value": writer},
        ]);
        let started = recorder.now();
        let record = |outcome| WriteRecord {
            writer,
            root,
            key: key.clone(),
            outcome,
            started,
            ended: recorder.now(),
        };
        if back_to_back {
            let published = tokio::time::timeout(HANG, config.publish(ops, None)).await;
            let (patch, outcome) = match published {
                Err(_) => {
                    stats.hangs.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Err(e)) => {
                    let refusal = Refusal::of(&e);
                    recorder.write(record(Outcome::Refused(refusal)));
                    if refusal == Refusal::Closed {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Ok(Ok(pair)) => pair,
            };
            let (rec, st) = (recorder.clone(), stats.clone());
            let key = key.clone();
            pending.spawn(async move {
                let outcome = match tokio::time::timeout(HANG, outcome).await {
                    Err(_) => {
                        st.hangs.fetch_add(1, Ordering::Relaxed);
                        Outcome::Indeterminate
                    }
                    Ok(Ok(WriteOutcome::Committed)) => Outcome::Committed,
                    Ok(Ok(WriteOutcome::Conflict { .. })) => Outcome::Conflict,
                    Ok(Ok(WriteOutcome::TimedOut)) | Ok(Err(_)) => Outcome::Indeterminate,
                };
                rec.write(WriteRecord {
                    writer,
                    root,
                    key,
                    outcome,
                    started,
                    ended: rec.now(),
                });
            });
            // Next patch as soon as ours is our head (or something else is).
            let mut waited = Duration::ZERO;
            while config.head() != patch.hash && waited < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                waited += Duration::from_millis(1);
            }
            while pending.len() >= IN_FLIGHT {
                pending.join_next().await;
            }
        } else {
            let outcome = match tokio::time::timeout(HANG, config.submit(ops)).await {
                Err(_) => {
                    stats.hangs.fetch_add(1, Ordering::Relaxed);
                    recorder.write(record(Outcome::Indeterminate));
                    continue;
                }
                Ok(Ok(_)) => Outcome::Committed,
                Ok(Err(WriteError::Conflict { .. })) => Outcome::Conflict,
                Ok(Err(WriteError::Timeout { .. })) => Outcome::Indeterminate,
                Ok(Err(e)) => Outcome::Refused(Refusal::of(&e)),
            };
            recorder.write(record(outcome));
            if outcome == Outcome::Refused(Refusal::Closed) {
                // Recorded, so the checker sees the writer stop early.
                return;
            }
            if outcome != Outcome::Committed && outcome != Outcome::Conflict {
                // Not connected, or no storage: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    while pending.join_next().await.is_some() {}
}
