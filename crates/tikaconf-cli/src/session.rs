//! From the global options to what every command that touches a deployment
//! starts with: the ROOT it names, `--timeout`, `--schema`, and the Redis
//! client's options (`remote` connects with them).
//!
//! The one place that reads ROOT and applies `--timeout` to both the load and
//! the write waits, so that every command agrees on what they mean.

use std::time::Duration;

use tikaconf::proto::FollowerConfig;
use tikaconf::{ClientOptions, Root, Schema};

use crate::cli::Global;
use crate::credentials::Credentials;
use crate::failure::{Code, Failure};

/// Reads a ROOT argument as users write it.
pub fn parse_root(root: &str) -> Result<Root, Failure> {
    root.parse::<Root>()
        .map_err(|e| Failure::bad_input(e).context(format!("bad ROOT {root:?}")))
}

/// `--timeout` as a duration; rejects what cannot be one.
pub fn timeout(global: &Global) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(global.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "--timeout must be a positive number of seconds, not {}",
                global.timeout
            ))
        })
}

/// The client options the global options make: namespace, `--timeout` for
/// loads and writes, keys, CA and schema.
pub fn client_options(global: &Global) -> Result<ClientOptions, Failure> {
    let wait = timeout(global)?;
    let credentials = Credentials::from_options(global)?;
    Ok(ClientOptions {
        namespace: global.namespace.clone(),
        load_timeout: wait,
        follower: FollowerConfig {
            write_timeout: wait,
            ..FollowerConfig::default()
        },
        tls_ca_pem: credentials.tls_ca_pem,
        trust: credentials.trust,
        signing_key: credentials.signing_key,
        schema: schema(global)?,
        ..ClientOptions::default()
    })
}

/// The `--schema` file, compiled; a file that cannot be read or is not a
/// JSON Schema is bad input (exit 2), found before anything is published.
pub fn schema(global: &Global) -> Result<Option<Schema>, Failure> {
    let Some(path) = &global.schema else {
        return Ok(None);
    };
    let bad =
        |e: anyhow::Error| Failure::bad_input(e).context(format!("--schema {}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.into()))?;
    Schema::from_json(&text)
        .map(Some)
        .map_err(|e| bad(e.into()))
}

/// Fails fast, with exit code 6, when Redis cannot be reached.
///
/// The library's first connection retries for about ten seconds before it gives
/// up on a refused connection (its connection manager's default backoff), which is
/// right for a bot starting next to its Redis but wrong for a command that a
/// person or a script just ran with a wrong `--redis`. One plain connection
/// attempt, bounded by `--timeout`, answers the question at once.
pub async fn check_reachable(global: &Global) -> Result<(), Failure> {
    let url = redact(&global.redis);
    let unreachable = |e: anyhow::Error| {
        Failure::new(Code::Connect, e).context(format!("cannot connect to Redis at {url}"))
    };
    let ca = Credentials::from_options(global)?.tls_ca_pem;
    let client = tikaconf_redis::bus::open_client(&global.redis, ca.as_deref())
        .map_err(|e| unreachable(anyhow::anyhow!("{e}")))?;
    let wait = timeout(global)?;
    match tokio::time::timeout(wait, client.get_multiplexed_async_connection()).await {
        Ok(Ok(_connection)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(anyhow::anyhow!("{e}"))),
        Err(_) => Err(unreachable(anyhow::anyhow!("no answer within {wait:?}"))),
    }
}

/// A Redis URL fit for logs and messages: any `user:password@` is hidden.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The `meta.author` of this command's writes: `--author` (or
/// `TIKACONF_AUTHOR`), else `$USER@hostname`. The same over Redis (in the
/// patch's `meta`) and over HTTP (the `Tikaconf-Author` header, from which the
/// server makes the same `meta`).
pub fn author(global: &Global) -> String {
    if let Some(author) = global.author.as_ref().filter(|a| !a.is_empty()) {
        return author.clone();
    }
    let user = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let name = text.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials_only() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("rediss://bot:s3cret@redis.example:6380/0"),
            "rediss://***@redis.example:6380/0"
        );
    }
}
