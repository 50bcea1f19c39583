//! A single-member etcd cluster as a child process: the durable, watchable
//! key-value store tikaconf is compared with.
//!
//! Client and peer URLs are on free loopback ports and the data directory is
//! temporary, so the benchmark never touches an etcd it did not start. etcd
//! fsyncs its write-ahead log before acknowledging a put, like redb does before
//! tikaconf's `stored`, so durable-write figures compare like with like.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tikaconf_test::free_port;

use super::{find_binary, version_line, wait_for_port};

#[derive(Debug)]
pub struct EtcdServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl EtcdServer {
    /// The `etcd` binary, if installed.
    pub fn binary() -> Option<PathBuf> {
        find_binary(&["etcd", "/usr/bin/etcd", "/usr/local/bin/etcd"])
    }

    pub fn version() -> Option<String> {
        Self::binary().map(|b| version_line(&b))
    }

    /// Starts etcd, or `Ok(None)` when it is not installed.
    pub fn start() -> anyhow::Result<Option<EtcdServer>> {
        let Some(binary) = Self::binary() else {
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("tikaconf-bench-etcd-")
            .tempdir()?;
        let (port, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(&binary)
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let mut server = EtcdServer {
            child,
            port,
            _dir: dir,
        };
        if !wait_for_port(port, Duration::from_secs(15)) {
            let _ = server.child.kill();
            bail!("etcd did not listen on port {port} within 15 s");
        }
        Ok(Some(server))
    }

    pub fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
