//! What a write acknowledged by a storage node on the Redis store is worth: read
//! from Redis's own persistence settings, and checked at start-up.
//!
//! A storage node acknowledges a write (`stored`) once its store says the write
//! is durable. With the redb store that means synced to the node's disk. With the
//! Redis store it means "Redis answered the script", and what survives a crash of
//! the Redis host then depends entirely on how that Redis is configured:
//!
//! | settings | an acknowledged (Committed) write after a crash of the Redis host |
//! | --- | --- |
//! | `appendonly yes`, `appendfsync always` | survives: on disk before Redis answers |
//! | `appendonly yes`, `appendfsync everysec` | may be lost: up to about the last second of writes |
//! | `appendonly yes`, `appendfsync no` | may be lost: whatever the OS had not flushed (about 30 s on Linux) |
//! | `appendonly no` | lost unless in an RDB snapshot: everything since the last one (all of it without `save`) |
//!
//! A crash of the Redis *process* alone (the host stays up) loses nothing with any
//! `appendfsync`, since the kernel still holds what was written; and a failover to
//! a replica can lose what the replica had not received, whatever the settings.
//! Neither is visible from the settings.
//!
//! So a storage node refuses to start on settings that can lose acknowledged
//! writes unless the operator accepts it ([`AcceptedLoss`]), and refuses too when
//! the settings cannot be read at all (`CONFIG` forbidden by an ACL, or renamed
//! away as managed services do): then nobody can say what an acknowledgement is
//! worth. The check reads the settings once, at start-up; changing them later
//! with `CONFIG SET` is the operator's business.

use std::collections::HashMap;
use std::fmt;

use redis::aio::ConnectionManager;

/// Redis's persistence, as its settings describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `appendonly yes` with `appendfsync always`: durable when acknowledged.
    Always,
    /// `appendonly yes` with `appendfsync everysec`.
    EverySec,
    /// `appendonly yes` with `appendfsync no`.
    NoFsync,
    /// `appendonly no`: RDB snapshots at best.
    NoAof,
    /// The settings could not be read (accepted only with [`AcceptedLoss::None`]).
    Unknown,
}

impl Persistence {
    /// Whether an acknowledged write survives a crash of the Redis host.
    pub fn is_durable(self) -> bool {
        self == Persistence::Always
    }
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Persistence::Always => {
                "appendonly yes, appendfsync always (acknowledged writes are on disk)"
            }
            Persistence::EverySec => {
                "appendonly yes, appendfsync everysec (a crash of the Redis host loses up to \
                 about the last second of acknowledged writes)"
            }
            Persistence::NoFsync => {
                "appendonly yes, appendfsync no (a crash of the Redis host loses whatever the \
                 OS had not flushed, about 30 s of acknowledged writes on Linux)"
            }
            Persistence::NoAof => {
                "appendonly no (a crash or restart of Redis loses every acknowledged write \
                 since the last RDB snapshot, all of them without one)"
            }
            Persistence::Unknown => "unknown (the settings could not be read)",
        })
    }
}

/// How much loss of acknowledged writes the operator accepts: what
/// `--accept-redis-durability` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum AcceptedLoss {
    /// Nothing: only `appendonly yes` with `appendfsync always` (the default).
    #[default]
    Nothing,
    /// Up to about a second: `appendfsync everysec` too.
    EverySec,
    /// Anything: any settings, including none at all and settings that cannot be
    /// read.
    None,
}

impl AcceptedLoss {
    /// Whether `found` is acceptable.
    pub fn allows(self, found: Persistence) -> bool {
        match found {
            Persistence::Always => true,
            Persistence::EverySec => self >= AcceptedLoss::EverySec,
            Persistence::NoFsync | Persistence::NoAof | Persistence::Unknown => {
                self == AcceptedLoss::None
            }
        }
    }
}

/// Why the Redis store must not be used as it is configured.
#[derive(Debug, thiserror::Error)]
pub enum DurabilityError {
    /// The settings can lose acknowledged writes, and that was not accepted.
    #[error(
        "Redis can lose writes a storage node acknowledged: {found}. Set `appendonly yes` \
         and `appendfsync always` (redis.conf, or CONFIG SET then CONFIG REWRITE), or \
         accept the loss explicitly with --accept-redis-durability {flag}",
        flag = if *.found == Persistence::EverySec { "everysec" } else { "none" }
    )]
    Lossy {
        /// What Redis is configured to do.
        found: Persistence,
    },
    /// Redis refused to tell its settings (`CONFIG GET` forbidden or renamed).
    #[error(
        "cannot tell whether Redis keeps acknowledged writes: it refused CONFIG GET \
         appendonly/appendfsync. Allow that command for this user (ACL: +config|get), \
         or accept whatever Redis does with --accept-redis-durability none"
    )]
    Unknown {
        /// Redis's refusal.
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered something that is not a known setting.
    #[error("Redis answered CONFIG GET {parameter} with {value:?}, which is not a known setting")]
    Unexpected {
        /// The setting asked for: `appendonly` or `appendfsync`.
        parameter: &'static str,
        /// Redis's answer for it.
        value: String,
    },
    /// The question could not be asked (connection failed).
    #[error("cannot read Redis's persistence settings")]
    Redis {
        /// The connection's error.
        #[source]
        source: redis::RedisError,
    },
}

/// Reads the persistence settings and checks them against what is accepted;
/// returns what was found (which may be [`Persistence::Unknown`] only when
/// `accepted` is [`AcceptedLoss::None`]).
pub(crate) async fn check(
    conn: &mut ConnectionManager,
    accepted: AcceptedLoss,
) -> Result<Persistence, DurabilityError> {
    let found = match read(conn).await {
        Ok(found) => found,
        // The server answered with an error (NOPERM, unknown command): it runs,
        // but will not say how it persists.
        Err(DurabilityError::Redis { source }) if source.code().is_some() => {
            if accepted == AcceptedLoss::None {
                return Ok(Persistence::Unknown);
            }
            return Err(DurabilityError::Unknown { source });
        }
        Err(other) => return Err(other),
    };
    if accepted.allows(found) {
        Ok(found)
    } else {
        Err(DurabilityError::Lossy { found })
    }
}

async fn read(conn: &mut ConnectionManager) -> Result<Persistence, DurabilityError> {
    let appendonly = config_get(conn, "appendonly").await?;
    match appendonly.as_str() {
        "no" => return Ok(Persistence::NoAof),
        "yes" => {}
        _ => {
            return Err(DurabilityError::Unexpected {
                parameter: "appendonly",
                value: appendonly,
            });
        }
    }
    let appendfsync = config_get(conn, "appendfsync").await?;
    match appendfsync.as_str() {
        "always" => Ok(Persistence::Always),
        "everysec" => Ok(Persistence::EverySec),
        "no" => Ok(Persistence::NoFsync),
        _ => Err(DurabilityError::Unexpected {
            parameter: "appendfsync",
            value: appendfsync,
        }),
    }
}

/// `CONFIG GET parameter` (an array of pairs in RESP2, a map in RESP3: both read
/// as a map).
async fn config_get(
    conn: &mut ConnectionManager,
    parameter: &'static str,
) -> Result<String, DurabilityError> {
    let mut reply: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(parameter)
        .query_async(conn)
        .await
        .map_err(|source| DurabilityError::Redis { source })?;
    reply
        .remove(parameter)
        .ok_or_else(|| DurabilityError::Unexpected {
            parameter,
            value: String::new(),
        })
        .map(|v| v.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_level_accepts() {
        use Persistence::*;
        let all = [Always, EverySec, NoFsync, NoAof, Unknown];
        let accepted = |level: AcceptedLoss| -> Vec<Persistence> {
            all.into_iter().filter(|p| level.allows(*p)).collect()
        };
        assert_eq!(accepted(AcceptedLoss::Nothing), [Always]);
        assert_eq!(accepted(AcceptedLoss::EverySec), [Always, EverySec]);
        assert_eq!(accepted(AcceptedLoss::None), all);
        assert!(Always.is_durable() && !EverySec.is_durable());
    }
}
