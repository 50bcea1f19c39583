//! The servers the benchmark runs against, each a child process of its own on a
//! free loopback port with a temporary data directory.
//!
//! The benchmark never talks to a server it did not start: machines running it
//! may well have Redis or NATS on their default ports, and measuring those would
//! measure someone else's configuration. Redis is required (tikaconf runs on it);
//! etcd and NATS are optional baselines, and a missing binary yields `None`, which
//! the tables print as "not run".

pub mod etcd;
pub mod nats;
pub mod redis;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The first of `names` found as an executable on `PATH` or at an absolute path.
pub fn find_binary(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        let candidate = Path::new(name);
        if candidate.is_absolute() {
            if candidate.is_file() {
                return Some(candidate.to_path_buf());
            }
            continue;
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let full = dir.join(name);
                if full.is_file() {
                    return Some(full);
                }
            }
        }
    }
    None
}

/// Waits until something accepts TCP connections on loopback `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The first line of `binary --version`, for the report.
pub fn version_line(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown version".into())
}
