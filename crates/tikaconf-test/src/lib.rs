//! The test harness that tikaconf's integration tests share.
//!
//! tikaconf's promises are about what happens when real processes fail: a Redis
//! server that dies and comes back, a storage node that races another one, a TLS
//! connection that must be verified. Mocks cannot tell us whether those promises
//! hold, so the tests run against a real `redis-server`, one private process per
//! test. [`RedisServer`] owns such a process: it picks a free loopback port, gives
//! the server its own temporary directory (so persistence files never leak between
//! tests), waits until the server answers `PING`, and kills it on drop so that a
//! failing test never leaves a server behind.
//!
//! A missing `redis-server` is a loud failure, never a skip: a test suite that
//! silently skips its integration tests reports success for code it never ran.
//!
//! The waits here are synchronous (short sleeps). That is deliberate: it keeps the
//! harness usable from plain `#[test]`s and from `#[tokio::test]`s alike, and a
//! test that is waiting for its server to boot has nothing else to run anyway.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod acl;
pub mod proxy;
pub mod rejects;
#[cfg(feature = "storage-node")]
pub mod storage_node;
pub use proxy::{FaultProxy, ProxyStats};

/// How long a server may take to answer `PING` after it is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times [`RedisServerBuilder::start`] picks a new port when the one it
/// picked was taken by someone else between picking and binding.
const PORT_ATTEMPTS: usize = 5;

/// The panic message when the binary is missing, spelled out once so that it reads
/// the same wherever it is raised.
const NOT_FOUND: &str = "redis-server not found on PATH: install it (apt-get install redis-server)";

/// Returns a loopback TCP port that was free a moment ago.
///
/// The port is found by binding port 0 and reading back what the kernel chose, then
/// releasing it. Someone else may take it before the caller binds it again; callers
/// that spawn servers must be ready to retry (as [`RedisServerBuilder::start`] is).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind a loopback port to find a free one: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read back the bound loopback port: {e}"))
        .port()
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes; returns
/// whether it held.
///
/// Distributed behaviour (a message delivered, a head stored) happens "eventually";
/// tests assert it by polling with a deadline rather than sleeping a guessed amount,
/// which is both faster when things work and less flaky when the machine is slow.
#[must_use = "assert on the result: a timed-out wait is a test failure"]
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`wait_until`], for conditions that must themselves await (a query to Redis,
/// a load from a store).
#[must_use = "assert on the result: a timed-out wait is a test failure"]
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The PEM files a TLS-enabled server is started with.
///
/// The server presents `cert`/`key`; clients verify it against `ca`. With
/// [`TlsFiles::generate`] the certificate is its own CA, which is all a test
/// needs to exercise certificate verification for real.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The CA certificate clients verify the server against (PEM).
    pub ca: PathBuf,
}

impl TlsFiles {
    /// Generates a throwaway CA and a server certificate it signs for
    /// `127.0.0.1`/`localhost`, in `dir`, with the `openssl` command-line tool.
    ///
    /// Two certificates rather than one self-signed: rustls (rightly) refuses a CA
    /// certificate presented as the server's own. Shelling out keeps a certificate
    /// generator out of the dependency tree; the tool is present wherever
    /// `redis-server` was built with TLS.
    pub fn generate(dir: &Path) -> io::Result<TlsFiles> {
        let ca = dir.join("ca.crt");
        let ca_key = dir.join("ca.key");
        let cert = dir.join("redis.crt");
        let key = dir.join("redis.key");
        let csr = dir.join("redis.csr");
        let ext = dir.join("redis.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )?;
        openssl(|c| {
            c.args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=tikaconf test CA"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca)
        })?;
        openssl(|c| {
            c.args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
                .args(["-subj", "/CN=localhost"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr)
        })?;
        openssl(|c| {
            c.args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert)
        })?;
        Ok(TlsFiles { cert, key, ca })
    }

    /// The CA certificate's PEM bytes, as a client needs them to verify the server.
    pub fn ca_pem(&self) -> io::Result<Vec<u8>> {
        std::fs::read(&self.ca)
    }
}

/// Runs one `openssl` command, turning a failure into an error that carries its
/// stderr.
fn openssl(args: impl FnOnce(&mut Command) -> &mut Command) -> io::Result<()> {
    let mut cmd = Command::new("openssl");
    args(&mut cmd);
    let output = cmd.stdin(Stdio::null()).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl could not generate a test certificate: {}",
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// Options for a [`RedisServer`]; see [`RedisServer::builder`].
#[derive(Debug, Default, Clone)]
pub struct RedisServerBuilder {
    persistence: bool,
    tls: Option<TlsFiles>,
    extra_args: Vec<String>,
}

impl RedisServerBuilder {
    /// With persistence the server keeps an append-only file, fsynced on every
    /// write, so that a [`RedisServer::kill`] followed by [`RedisServer::restart`]
    /// loses nothing that was acknowledged. Without it (the default) a restart comes
    /// back empty, which is how tests model "Redis lost its memory".
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }

    /// Serves TLS with `files`. Fails now, rather than as a server that never
    /// becomes ready, when a file cannot be read.
    pub fn tls(mut self, files: TlsFiles) -> io::Result<Self> {
        for path in [&files.cert, &files.key, &files.ca] {
            std::fs::metadata(path).map_err(|e| {
                io::Error::new(e.kind(), format!("TLS file {}: {e}", path.display()))
            })?;
        }
        self.tls = Some(files);
        Ok(self)
    }

    /// Extra `redis-server` arguments, appended last so that they override ours
    /// (e.g. `["--requirepass", "secret"]`).
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Spawns the server and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not on `PATH`, when no port could be bound after a few
    /// attempts, or when the server does not become ready within 10 s (the panic
    /// carries the tail of its log).
    pub fn start(self) -> RedisServer {
        let mut dir = tempfile::Builder::new()
            .prefix("tikaconf-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for redis-server: {e}"));
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                plain_port: 0,
                options: self.clone(),
                dir: Some(dir),
            };
            if server.options.tls.is_some() {
                server.plain_port = free_port();
            } else {
                server.plain_port = server.port;
            }
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(SpawnError::PortTaken(log)) => {
                    last_failure = log;
                    dir = server.take_dir();
                }
                Err(SpawnError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "redis-server could not bind a free port after {PORT_ATTEMPTS} attempts; last log:\n{last_failure}"
        );
    }
}

/// Why one spawn attempt failed: a lost race for the port (try another), or
/// anything else (give up with the message).
enum SpawnError {
    PortTaken(String),
    Failed(String),
}

/// A private `redis-server` process on a loopback port, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    /// The port clients use: the TLS port when TLS is on.
    port: u16,
    /// A plaintext port, for the harness's own readiness probe. Equal to `port`
    /// without TLS.
    plain_port: u16,
    options: RedisServerBuilder,
    /// Always `Some` outside of [`RedisServerBuilder::start`]'s retry loop.
    dir: Option<TempDir>,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir.as_ref().map(TempDir::path))
            .finish()
    }
}

impl RedisServer {
    /// Starts a server with default options: no persistence, no TLS.
    pub fn start() -> RedisServer {
        RedisServer::builder().start()
    }

    /// A builder, for a server with persistence, TLS or other settings.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://…` when the server serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The plaintext URL. A TLS server also listens in plaintext on a second port so
    /// that tests can inspect it without TLS plumbing.
    pub fn plain_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.plain_port)
    }

    /// The port of [`RedisServer::url`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (its `--dir`), which survives restarts.
    pub fn dir(&self) -> &Path {
        self.dir_ref().path()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (it may have been killed or crashed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process with SIGKILL, as a crash or an OOM kill would: no
    /// shutdown, no final save. Waits until it is gone, so the port is free for
    /// [`RedisServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Killing an already exited child fails harmlessly; wait reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process cleanly with `SHUTDOWN` (an append-only file is flushed),
    /// falling back to SIGKILL if it does not exit within 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The connection is closed by the server as it exits, so no reply is expected.
        let _ = command(self.plain_port, b"SHUTDOWN\r\n");
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port with the same directory (so with
    /// persistence it reloads its data), after a [`kill`](RedisServer::kill) or a
    /// [`stop`](RedisServer::stop); kills it first if it is still running. Waits
    /// until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When the server does not come back within 10 s, e.g. because another process
    /// took its port in the meantime.
    pub fn restart(&mut self) {
        self.kill();
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(SpawnError::PortTaken(log)) => panic!(
                "redis-server could not restart: port {} was taken meanwhile; log:\n{log}",
                self.port
            ),
            Err(SpawnError::Failed(msg)) => panic!("{msg}"),
        }
    }

    fn dir_ref(&self) -> &TempDir {
        match &self.dir {
            Some(dir) => dir,
            None => unreachable!("the directory is only taken while retrying a start"),
        }
    }

    fn take_dir(&mut self) -> TempDir {
        match self.dir.take() {
            Some(dir) => dir,
            None => unreachable!("the directory is taken once per failed attempt"),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("redis.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn args(&self) -> Vec<String> {
        let o = &self.options;
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.plain_port.to_string(),
            "--dir".into(),
            self.dir().display().to_string(),
            "--logfile".into(),
            self.log_path().display().to_string(),
            "--daemonize".into(),
            "no".into(),
            "--save".into(),
            String::new(),
        ];
        if o.persistence {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
        } else {
            args.extend(["--appendonly", "no"].map(String::from));
        }
        if let Some(tls) = &o.tls {
            args.extend([
                "--tls-port".to_string(),
                self.port.to_string(),
                "--tls-cert-file".to_string(),
                tls.cert.display().to_string(),
                "--tls-key-file".to_string(),
                tls.key.display().to_string(),
                "--tls-ca-cert-file".to_string(),
                tls.ca.display().to_string(),
                // Tests verify the server; client certificates are not part of tikaconf.
                "--tls-auth-clients".to_string(),
                "no".to_string(),
            ]);
        }
        args.extend(o.extra_args.iter().cloned());
        args
    }

    fn spawn_and_wait(&mut self) -> Result<(), SpawnError> {
        let child = Command::new("redis-server")
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_FOUND}"),
            Err(e) => {
                return Err(SpawnError::Failed(format!(
                    "cannot spawn redis-server: {e}"
                )));
            }
        };
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = self.log_tail();
                if log.contains("Address already in use") {
                    return Err(SpawnError::PortTaken(log));
                }
                return Err(SpawnError::Failed(format!(
                    "redis-server exited during startup ({status}); log tail:\n{log}"
                )));
            }
            // A server with `--requirepass` refuses the probe with NOAUTH, which
            // still proves it is up and done loading.
            if matches!(command(self.plain_port, b"PING\r\n"),
                Ok(reply) if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH"))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(SpawnError::Failed(format!(
                    "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}; log tail:\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one inline command over plain TCP and returns the first chunk of the
/// reply. The harness speaks just enough RESP for `PING` and `SHUTDOWN`, so that
/// its readiness probe does not depend on the client library under test.
fn command(port: u16, cmd: &[u8]) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(cmd)?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
