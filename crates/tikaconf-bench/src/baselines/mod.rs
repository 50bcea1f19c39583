//! The baselines, one module per system, each reduced to the operations the
//! workloads time: raw Redis Pub/Sub (the floor tikaconf adds its protocol to),
//! etcd (a durable, watchable store) and NATS KV (a lighter watchable store).
//!
//! Each baseline is written as plainly as its client library allows (no
//! batching tricks tikaconf could not use either), with one connection per
//! simulated node, as tikaconf's followers have.

pub mod etcd;
pub mod nats;
pub mod raw_redis;
