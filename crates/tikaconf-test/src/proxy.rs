//! [`FaultProxy`]: a TCP proxy between one node and Redis whose faults can be
//! switched on and off while traffic flows.
//!
//! tikaconf's hardest promises are about the network misbehaving in ways a
//! `redis-server` restart cannot show: a connection that is slow, one that is cut
//! with data in flight, a partition that swallows traffic for seconds while both
//! ends keep their sockets open, and a reader so slow that Redis gives up on it as
//! a slow pub/sub client. Putting a proxy on the path of each node lets a test do
//! all of that to one node at a time, on loopback, without root privileges or
//! firewall rules.
//!
//! Each accepted connection is forwarded to `upstream` by two pumps (one per
//! direction). A pump reads a chunk, stamps it with the time it may be delivered
//! (now + latency), and a writer delivers it then; so latency delays traffic
//! without throttling it, as a long link does. The faults:
//!
//! - [`FaultProxy::set_latency`]: delay every chunk, both ways.
//! - [`FaultProxy::reset_all`]: close every live connection (as a reset would).
//! - [`FaultProxy::blackhole`]: stop forwarding both ways and hold new
//!   connections unanswered, keeping every socket open: a partition. Data waits
//!   in the kernel's buffers and flows again when the partition heals, unless an
//!   end gave up meanwhile.
//! - [`FaultProxy::stall_reads`]: stop reading what Redis sends to the client, so
//!   that Redis's output buffer for it grows until its `client-output-buffer-limit`
//!   disconnects it. The proxy's upstream socket has a small receive buffer so
//!   that this happens after little data.
//! - [`FaultProxy::drop_new`]: close new connections as soon as they are accepted.
//!
//! The proxy runs on the tokio runtime it was started from, and stops (closing
//! every connection) when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Receive buffer of the proxy's upstream sockets: small, so that a stalled reader
/// pushes back on Redis after little data.
const UPSTREAM_RECV_BUFFER: u32 = 16 * 1024;

/// Size of one forwarded chunk.
const CHUNK: usize = 16 * 1024;

/// The switchable faults, as one value so that every pump sees a change at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Faults {
    latency: Duration,
    blackhole: bool,
    stall_reads: bool,
    drop_new: bool,
    /// Bumped by [`FaultProxy::reset_all`]; a connection ends when it changes.
    resets: u64,
}

/// Counters of what the proxy did, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted (including those dropped by `drop_new`).
    pub accepted: u64,
    /// Connections refused by `drop_new`.
    pub refused: u64,
    /// Connections currently forwarded.
    pub live: u64,
    /// Connections closed by `reset_all`.
    pub reset: u64,
    /// Connections closed because one end closed or failed (for instance Redis
    /// disconnecting a slow pub/sub client).
    pub closed_by_peer: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    live: AtomicU64,
    reset: AtomicU64,
    closed_by_peer: AtomicU64,
}

/// A TCP proxy on a free loopback port forwarding to one upstream address, with
/// faults switchable at run time. Dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free `127.0.0.1` port, with no fault on.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when no loopback port can be bound.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a loopback port for a proxy: {e}"));
        std_listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("cannot make the proxy's listener non-blocking: {e}"));
        let addr = std_listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the proxy's address: {e}"));
        let listener = TcpListener::from_std(std_listener)
            .unwrap_or_else(|e| panic!("FaultProxy::start needs a tokio runtime: {e}"));
        let (faults, _) = watch::channel(Faults::default());
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            faults.clone(),
            counters.clone(),
        ));
        FaultProxy {
            addr,
            upstream,
            faults,
            counters,
            task,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Delays every chunk by `latency`, both ways (zero: no delay).
    pub fn set_latency(&self, latency: Duration) {
        self.faults.send_modify(|f| f.latency = latency);
    }

    /// Closes every live connection. New ones are accepted as usual.
    pub fn reset_all(&self) {
        self.faults.send_modify(|f| f.resets += 1);
    }

    /// A partition: while on, nothing is forwarded either way and new connections
    /// are accepted but not answered; every socket stays open.
    pub fn blackhole(&self, on: bool) {
        self.faults.send_modify(|f| f.blackhole = on);
    }

    /// While on, nothing is read from upstream for the client, so Redis's output
    /// buffer for this client grows.
    pub fn stall_reads(&self, on: bool) {
        self.faults.send_modify(|f| f.stall_reads = on);
    }

    /// While on, new connections are closed as soon as they are accepted.
    pub fn drop_new(&self, on: bool) {
        self.faults.send_modify(|f| f.drop_new = on);
    }

    /// Turns every fault off (latency zero, no partition, no stall, accept new
    /// connections). Live connections are kept.
    pub fn heal(&self) {
        self.faults.send_modify(|f| {
            let resets = f.resets;
            *f = Faults {
                resets,
                ..Faults::default()
            };
        });
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            live: c.live.load(Ordering::Relaxed),
            reset: c.reset.load(Ordering::Relaxed),
            closed_by_peer: c.closed_by_peer.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Ends every connection task too: they all watch the fault switches.
        self.faults.send_modify(|f| f.resets += 1);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    counters: Arc<Counters>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if faults.borrow().drop_new {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        let rx = faults.subscribe();
        let counters = counters.clone();
        tokio::spawn(async move {
            counters.live.fetch_add(1, Ordering::Relaxed);
            let end = serve(client, upstream, rx).await;
            counters.live.fetch_sub(1, Ordering::Relaxed);
            match end {
                End::Reset => counters.reset.fetch_add(1, Ordering::Relaxed),
                End::Closed => counters.closed_by_peer.fetch_add(1, Ordering::Relaxed),
            };
        });
    }
}

/// How a connection ended.
enum End {
    Reset,
    Closed,
}

/// Which way a pump forwards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToUpstream,
    ToClient,
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Faults>,
) -> End {
    let resets = faults.borrow().resets;
    // A partition holds a new connection unanswered until it heals.
    let open = faults.wait_for(|f| !f.blackhole || f.resets != resets);
    match open.await {
        Ok(f) if f.resets == resets => {}
        _ => return End::Reset,
    }
    let connect = async {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(UPSTREAM_RECV_BUFFER)?;
        socket.connect(upstream).await
    };
    let upstream = tokio::select! {
        r = connect => match r {
            Ok(s) => s,
            Err(_) => return End::Closed,
        },
        _ = faults.wait_for(|f| f.resets != resets) => return End::Reset,
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut reset = faults.clone();
    tokio::select! {
        _ = pump(client_read, upstream_write, faults.clone(), Direction::ToUpstream) => End::Closed,
        _ = pump(upstream_read, client_write, faults.clone(), Direction::ToClient) => End::Closed,
        _ = reset.wait_for(|f| f.resets != resets) => End::Reset,
    }
}

/// Forwards one direction until either end closes or fails.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    faults: watch::Receiver<Faults>,
    direction: Direction,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut read_faults = faults.clone();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let stalled = |f: &Faults| f.stall_reads && direction == Direction::ToClient;
            let flowing = read_faults.wait_for(|f| !(f.blackhole || stalled(f)));
            let latency = match flowing.await {
                Ok(f) => f.latency,
                Err(_) => return,
            };
            // A switch flipping while we wait for data takes effect at once; a
            // cancelled read loses nothing.
            let n = tokio::select! {
                r = from.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
                _ = read_faults.changed() => continue,
            };
            if tx
                .send((Instant::now() + latency, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let mut write_faults = faults;
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if write_faults.wait_for(|f| !f.blackhole).await.is_err() {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The reader ended: pass the close on.
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisServer;

    fn redis_addr(server: &RedisServer) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, server.port()))
    }

    /// Sends one command in RESP and reads until `want` bytes of reply or `wait`.
    async fn roundtrip(stream: &mut TcpStream, cmd: &[&str], wait: Duration) -> Option<String> {
        stream.write_all(&resp(cmd)).await.ok()?;
        read_some(stream, wait).await
    }

    fn resp(cmd: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
        for part in cmd {
            out.extend(format!("${}\r\n{part}\r\n", part.len()).into_bytes());
        }
        out
    }

    /// Reads what arrives within `wait`; `None` on timeout, EOF or error.
    async fn read_some(stream: &mut TcpStream, wait: Duration) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    async fn connect(proxy: &FaultProxy) -> TcpStream {
        TcpStream::connect(proxy.addr())
            .await
            .expect("connect to proxy")
    }

    const SHORT: Duration = Duration::from_millis(300);
    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn forwards_and_delays() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis_addr(&redis));
        let mut conn = connect(&proxy).await;
        assert_eq!(
            roundtrip(&mut conn, &["PING"], LONG).await.as_deref(),
            Some("+PONG\r\n")
        );
        proxy.set_latency(Duration::from_millis(150));
        let start = std::time::Instant::now();
        assert_eq!(
            roundtrip(&mut conn, &["PING"], LONG).await.as_deref(),
            Some("+PONG\r\n")
        );
        // Both ways: at least two delays.
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "{:?}",
            start.elapsed()
        );
        proxy.heal();
        let start = std::time::Instant::now();
        assert!(roundtrip(&mut conn, &["PING"], LONG).await.is_some());
        assert!(start.elapsed() < Duration::from_millis(150));
        assert_eq!(proxy.stats().live, 1);
    }

    #[tokio::test]
    async fn reset_all_closes_live_connections() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis_addr(&redis));
        let mut conn = connect(&proxy).await;
        assert!(roundtrip(&mut conn, &["PING"], LONG).await.is_some());
        proxy.reset_all();
        // The connection reads EOF (or an error): it is gone.
        assert_eq!(read_some(&mut conn, LONG).await, None);
        let mut again = connect(&proxy).await;
        assert!(roundtrip(&mut again, &["PING"], LONG).await.is_some());
        let stats = proxy.stats();
        assert_eq!((stats.reset, stats.live), (1, 1), "{stats:?}");
    }

    #[tokio::test]
    async fn blackhole_holds_traffic_until_healed() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis_addr(&redis));
        let mut conn = connect(&proxy).await;
        assert!(roundtrip(&mut conn, &["PING"], LONG).await.is_some());
        proxy.blackhole(true);
        assert_eq!(roundtrip(&mut conn, &["PING"], SHORT).await, None);
        // A new connection is accepted but not answered either.
        let mut fresh = connect(&proxy).await;
        assert_eq!(roundtrip(&mut fresh, &["PING"], SHORT).await, None);
        proxy.blackhole(false);
        // What was held flows now; the sockets stayed open.
        assert_eq!(
            read_some(&mut conn, LONG).await.as_deref(),
            Some("+PONG\r\n")
        );
        assert_eq!(
            read_some(&mut fresh, LONG).await.as_deref(),
            Some("+PONG\r\n")
        );
    }

    #[tokio::test]
    async fn drop_new_refuses_connections() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis_addr(&redis));
        let mut old = connect(&proxy).await;
        assert!(roundtrip(&mut old, &["PING"], LONG).await.is_some());
        proxy.drop_new(true);
        let mut refused = connect(&proxy).await;
        assert_eq!(roundtrip(&mut refused, &["PING"], LONG).await, None);
        // Live connections are untouched.
        assert!(roundtrip(&mut old, &["PING"], LONG).await.is_some());
        proxy.drop_new(false);
        let mut fresh = connect(&proxy).await;
        assert!(roundtrip(&mut fresh, &["PING"], LONG).await.is_some());
        assert_eq!(proxy.stats().refused, 1);
    }

    /// A stalled subscriber is disconnected by Redis as a slow pub/sub client once
    /// its output buffer passes the configured limit.
    #[tokio::test]
    async fn stalled_reader_is_dropped_by_redis() {
        let redis = RedisServer::builder()
            .extra_args(["--client-output-buffer-limit", "pubsub 64kb 16kb 1"])
            .start();
        let proxy = FaultProxy::start(redis_addr(&redis));
        let mut sub = connect(&proxy).await;
        let reply = roundtrip(&mut sub, &["SUBSCRIBE", "ch"], LONG)
            .await
            .unwrap();
        assert!(reply.contains("subscribe"), "{reply}");
        proxy.stall_reads(true);
        let mut publisher = TcpStream::connect(redis_addr(&redis)).await.unwrap();
        let payload = "x".repeat(32 * 1024);
        let mut dropped = false;
        for _ in 0..400 {
            let reply = roundtrip(&mut publisher, &["PUBLISH", "ch", &payload], LONG)
                .await
                .expect("publish reply");
            // PUBLISH answers the number of receivers: 0 once Redis dropped ours.
            if reply.starts_with(":0") {
                dropped = true;
                break;
            }
        }
        assert!(dropped, "Redis never disconnected the stalled subscriber");
        proxy.stall_reads(false);
        // The client side sees the close once the held data drains.
        let deadline = Instant::now() + LONG;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match tokio::time::timeout_at(deadline, sub.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the subscriber never saw its connection close"),
            }
        }
    }
}
