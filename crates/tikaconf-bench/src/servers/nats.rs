//! A NATS server with JetStream as a child process: the key-value watch baseline.
//!
//! JetStream keeps its files in a temporary directory and listens on a free
//! loopback port; the monitoring port is off. NATS KV acknowledges a put once
//! JetStream has stored it, which by default is not fsynced per message (the
//! server syncs on an interval), so its durable-write figures are informational.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tikaconf_test::free_port;

use super::{find_binary, version_line, wait_for_port};

#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl NatsServer {
    /// The `nats-server` binary, if installed (Debian puts it in /usr/sbin).
    pub fn binary() -> Option<PathBuf> {
        find_binary(&[
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ])
    }

    pub fn version() -> Option<String> {
        Self::binary().map(|b| version_line(&b))
    }

    /// Starts nats-server with JetStream, or `Ok(None)` when it is not installed.
    pub fn start() -> anyhow::Result<Option<NatsServer>> {
        let Some(binary) = Self::binary() else {
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("tikaconf-bench-nats-")
            .tempdir()?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("nats.log"))?;
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js"])
            .arg("-sd")
            .arg(dir.path().join("js"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let mut server = NatsServer {
            child,
            port,
            _dir: dir,
        };
        if !wait_for_port(port, Duration::from_secs(15)) {
            let _ = server.child.kill();
            bail!("nats-server did not listen on port {port} within 15 s");
        }
        Ok(Some(server))
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
