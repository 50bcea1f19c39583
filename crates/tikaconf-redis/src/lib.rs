//! Redis transports for tikaconf.
//!
//! Redis is how a tikaconf fleet talks: patches travel over Pub/Sub (the bus), and
//! storage nodes may keep their shared state in plain keys (the store). Both live
//! here so that the rest of the system depends on Redis through one crate.

pub mod bus;
pub mod durability;
pub mod store;

pub use durability::{AcceptedLoss, DurabilityError, Persistence};
pub use store::RedisStore;
