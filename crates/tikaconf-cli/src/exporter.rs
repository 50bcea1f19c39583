//! `tikaconf storage --metrics ADDR`, and `tikaconf serve`'s `/metrics`: the
//! process's metrics in Prometheus text format over HTTP.
//!
//! The library counts through the `metrics` facade (see `tikaconf::metrics`);
//! this installs `metrics-exporter-prometheus` as the process's recorder, with
//! its own small HTTP listener (hyper), rather than a hand-written HTTP server
//! here. The listener, and the histograms' upkeep, run on a thread and a
//! runtime of their own: the storage node runs on one thread by design (see
//! `StorageNode::runtime`), and a scrape must not take turns with its loop.

use std::net::SocketAddr;

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::failure::Failure;

/// The exporter's settings both commands share: buckets rather than the
/// exporter's default summaries for every histogram, because buckets add up
/// across nodes (histogram_quantile over a fleet) and quantiles do not.
fn with_buckets(mut builder: PrometheusBuilder) -> Result<PrometheusBuilder, Failure> {
    for name in tikaconf::metrics::HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(
                Matcher::Full((*name).to_owned()),
                tikaconf::metrics::SECONDS_BUCKETS,
            )
            .map_err(Failure::other)?;
    }
    Ok(builder)
}

/// Installs the recorder for a server that serves `/metrics` on its own
/// router (`tikaconf serve`), and returns the handle that renders them; a
/// task on the current runtime runs the histograms' upkeep every 5 s. Call
/// before any client or storage node is made: they register their series
/// when they are.
pub fn install() -> Result<PrometheusHandle, Failure> {
    let handle = with_buckets(PrometheusBuilder::new())?
        .install_recorder()
        .map_err(|e| Failure::other(e).context("cannot install the metrics recorder"))?;
    tikaconf::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Starts serving the metrics on `http://ADDR/metrics` (the listener answers
/// any path) and installs the recorder. Call before the storage node starts:
/// the node registers its series when it does. Fails if the address cannot be
/// bound or a recorder is already installed.
pub fn serve(addr: SocketAddr) -> Result<(), Failure> {
    let context = || format!("cannot serve metrics on {addr}");
    let builder = with_buckets(PrometheusBuilder::new().with_http_listener(addr))
        .map_err(|e| e.context(context()))?;
    // Built, bound and run on the listener's own thread, which also owns its
    // runtime (a runtime may not be dropped inside another's async context,
    // as it would be here on an error); only the result comes back.
    let (built, result) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("tikaconf-metrics".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = built.send(Err(anyhow::Error::from(err)));
                    return;
                }
            };
            // Binds the listener now, so that a busy address fails the
            // command at once; the upkeep task is spawned on `runtime`.
            let exporter = {
                let _entered = runtime.enter();
                match builder.build() {
                    Ok((recorder, exporter)) => {
                        let _ = built.send(Ok(recorder));
                        exporter
                    }
                    Err(err) => {
                        let _ = built.send(Err(err.into()));
                        return;
                    }
                }
            };
            if let Err(err) = runtime.block_on(exporter) {
                tracing::error!(?err, "the metrics listener stopped");
            }
        })
        .map_err(|e| Failure::other(e).context(context()))?;
    // A short wait (a socket bound), once, at startup.
    let recorder = result
        .recv()
        .map_err(|e| Failure::other(e).context(context()))?
        .map_err(|e| Failure::other(e).context(context()))?;
    metrics::set_global_recorder(recorder).map_err(|e| Failure::other(e).context(context()))?;
    tikaconf::metrics::describe();
    tracing::info!(%addr, "serving metrics on http://{addr}/metrics");
    Ok(())
}
