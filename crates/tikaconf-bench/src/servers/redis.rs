//! The Redis server every tikaconf node and the raw-Redis baselines talk through.
//!
//! Started through `tikaconf-test`'s harness (free port, own directory, killed on
//! drop), with room for the fan-out workload's thousands of connections.

use tikaconf_test::RedisServer;

/// Starts a private `redis-server`; panics with an install hint if it is missing
/// (tikaconf cannot run without Redis, so there is nothing to report instead).
pub fn start() -> RedisServer {
    RedisServer::builder()
        .extra_args(["--maxclients", "10000"])
        .start()
}
