//! The bus's connections against a real redis-server, through the fault proxy:
//! a half-open link (a partition that keeps every socket open) is found by the
//! ping and remade, and the subscribed connection's queue stays bounded when the
//! consumer stops reading.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::atomic::Ordering;

use tikaconf_proto::BusEvent;
use tikaconf_redis::bus::{Backoff, BusOptions, QueueLimit, RedisBus, RedisEvents, open_client};
use tikaconf_test::{FaultProxy, RedisServer, wait_until};

/// Generous: the default ping finds a dead link within about 5 s.
const WAIT: Duration = Duration::from_secs(20);

fn addr(redis: &RedisServer) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, redis.port()))
}

/// The next event other than a message, within `WAIT`.
async fn next_change(events: &mut RedisEvents) -> Option<BusEvent> {
    let wait = async {
        while let Some(event) = events.next().await {
            if !matches!(event, BusEvent::Message { .. }) {
                return Some(event);
            }
        }
        None
    };
    tokio::time::timeout(WAIT, wait).await.ok().flatten()
}

/// The next message, within `WAIT`.
async fn next_message(events: &mut RedisEvents) -> Option<(Bytes, Bytes)> {
    let wait = async {
        while let Some(event) = events.next().await {
            if let BusEvent::Message { channel, payload } = event {
                return Some((channel, payload));
            }
        }
        None
    };
    tokio::time::timeout(WAIT, wait).await.ok().flatten()
}

/// A partition that closes no socket: the subscribed connection would stay
/// "up" for as long as the kernel keeps quiet (hours). The ping's deadline
/// finds it: the bus reports `Disconnected`, reconnects once the partition
/// heals, reports `Connected`, and works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_link_is_reported_lost_and_remade() {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(addr(&redis));
    let (bus, mut events) = RedisBus::connect(&proxy.url(), Backoff::default())
        .await
        .expect("connects through the proxy");
    assert!(matches!(
        next_change(&mut events).await,
        Some(BusEvent::Connected)
    ));
    bus.subscribe(&["quiet".to_owned()]).await.unwrap();

    proxy.blackhole(true);
    let lost = next_change(&mut events).await;
    assert!(
        matches!(lost, Some(BusEvent::Disconnected)),
        "a black-holed link must be reported lost, got {lost:?}"
    );

    proxy.heal();
    let back = next_change(&mut events).await;
    assert!(
        matches!(back, Some(BusEvent::Connected)),
        "reconnects once the partition heals, got {back:?}"
    );
    // The new link holds no subscription of the old one; subscribed again, it
    // delivers, and its publisher works.
    bus.subscribe(&["quiet".to_owned()]).await.unwrap();
    bus.publish(&[("quiet".to_owned(), Bytes::from_static(b"hello"))])
        .await
        .expect("the new publisher works");
    let (channel, payload) = next_message(&mut events).await.expect("delivered");
    assert_eq!((&channel[..], &payload[..]), (&b"quiet"[..], &b"hello"[..]));
}

/// A consumer that stops reading while a thousand messages arrive: the queue
/// holds at most its bound, drops the rest, and when read again delivers what it
/// kept, in order, then `Overflowed` in the place of what it dropped, naming the
/// channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_holds_at_most_the_bound() {
    const BOUND: usize = 100;
    const SENT: usize = 1000;
    let redis = RedisServer::start();
    let options = BusOptions {
        queue: QueueLimit {
            messages: BOUND,
            bytes: 1 << 20,
        },
        ..BusOptions::default()
    };
    let client = open_client(&redis.url(), None).unwrap();
    let (bus, mut events) = RedisBus::connect_with(client, options).await.unwrap();
    let stats = bus.queue_stats();
    assert!(matches!(
        next_change(&mut events).await,
        Some(BusEvent::Connected)
    ));
    bus.subscribe(&["flood".to_owned()]).await.unwrap();

    let (direct, _direct_events) = RedisBus::connect(&redis.url(), Backoff::default())
        .await
        .unwrap();
    let messages: Vec<(String, Bytes)> = (0..SENT)
        .map(|i| ("flood".to_owned(), Bytes::from(i.to_string())))
        .collect();
    for chunk in messages.chunks(100) {
        direct.publish(chunk).await.unwrap();
    }
    let dropped = || stats.dropped.load(Ordering::Relaxed) as usize;
    assert!(
        wait_until(WAIT, || dropped() + stats.len.load(Ordering::Relaxed)
            == SENT)
        .await,
        "every message arrived, kept or dropped: {stats:?}"
    );
    assert_eq!(
        stats.max_len.load(Ordering::Relaxed),
        BOUND,
        "never above the bound"
    );
    assert_eq!(dropped(), SENT - BOUND);

    for i in 0..BOUND {
        match events.next().await {
            Some(BusEvent::Message { payload, .. }) => assert_eq!(payload, i.to_string()),
            other => panic!("message {i}: {other:?}"),
        }
    }
    match events.next().await {
        Some(BusEvent::Overflowed { dropped, channels }) => {
            assert_eq!(dropped as usize, SENT - BOUND);
            assert_eq!(channels, Some(vec![Bytes::from_static(b"flood")]));
        }
        other => panic!("expected the overflow, got {other:?}"),
    }
}

/// The default bound, with nothing but the API every version has: a consumer
/// that reads nothing while 40 MiB arrive is handed at most 32 MiB of them
/// (the bound, Redis's own default output limit for a pub/sub client), then
/// told that the rest was dropped. Unbounded, it would hold all 40.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_holds_at_most_the_default_bound() {
    const SIZE: usize = 512 << 10;
    const SENT: usize = 80;
    let redis = RedisServer::start();
    let (bus, mut events) = RedisBus::connect(&redis.url(), Backoff::default())
        .await
        .unwrap();
    assert!(matches!(
        next_change(&mut events).await,
        Some(BusEvent::Connected)
    ));
    bus.subscribe(&["big".to_owned()]).await.unwrap();
    let (direct, _direct_events) = RedisBus::connect(&redis.url(), Backoff::default())
        .await
        .unwrap();
    let payload = Bytes::from(vec![b'x'; SIZE]);
    for _ in 0..SENT {
        direct
            .publish(&[("big".to_owned(), payload.clone())])
            .await
            .unwrap();
    }
    // Redis wrote every message to our connection before it answers this
    // SUBSCRIBE, and the connection reads in order: all of them have arrived.
    bus.subscribe(&["sync".to_owned()]).await.unwrap();

    let (mut delivered, mut told) = (0usize, false);
    while let Some(Some(event)) = futures_util::FutureExt::now_or_never(events.next()) {
        match event {
            BusEvent::Message { payload, .. } => delivered += payload.len(),
            BusEvent::Connected | BusEvent::Disconnected => panic!("{event:?}"),
            #[allow(unreachable_patterns)]
            _ => told = true,
        }
    }
    assert!(delivered > 0, "messages were delivered");
    assert!(
        delivered <= 32 << 20,
        "held {} MiB for a consumer that read nothing",
        delivered >> 20
    );
    assert!(told, "the consumer is told that messages were dropped");
}
