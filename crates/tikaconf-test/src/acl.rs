//! Least-privilege Redis ACL rules for tikaconf's roles, as docs/SECURITY.md
//! writes them: the single source that SECURITY.md quotes (the acl test in
//! `crates/tikaconf/tests/acl.rs` compares them word for word with the
//! document and runs them against a real `redis-server`), and that every test
//! needing a confined user (the CLI's refused write, the torture suite's
//! flood) starts its users with.
//!
//! `ns` is a namespace prefix (`""` or `"NS:"`), `connect` is
//! [`connect_rules`] (or `""`).

/// What every role's connections run on connect besides AUTH (always allowed):
/// redis-rs sends `CLIENT SETINFO LIB-NAME` and `LIB-VER` and ignores the answer;
/// allowing them keeps NOPERM entries out of `ACL LOG`. The subcommand exists from
/// Redis 7.2 on, and naming an unknown one in a rule stops the server from
/// starting, so it is only added for servers that have it.
pub fn connect_rules() -> &'static str {
    static RULES: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let out = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .expect("redis-server --version");
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or("0.0");
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (7, 2) {
            "+client|setinfo"
        } else {
            ""
        }
    })
}

/// A follower: SUBSCRIBE to `updates:*` channels and its reply channel; PUBLISH
/// only on `update_requests` (a selector, since a channel rule covers both
/// directions).
pub fn follower_rules(ns: &str, password: &str, connect: &str) -> Vec<String> {
    words(&format!(
        "on >{password} resetkeys resetchannels &{ns}updates:* &{ns}replies:* -@all +subscribe +unsubscribe +ping {connect} \
         (+publish resetchannels &{ns}update_requests)"
    ))
}

/// A writer: a follower that may also PUBLISH patches on `updates:*` (but not
/// on reply channels, which only storage answers on).
pub fn writer_rules(ns: &str, password: &str, connect: &str) -> Vec<String> {
    words(&format!(
        "on >{password} resetkeys resetchannels &{ns}updates:* &{ns}replies:* -@all +subscribe +unsubscribe +ping {connect} \
         (+publish resetchannels &{ns}updates:* &{ns}update_requests)"
    ))
}

/// A storage node: PSUBSCRIBE `updates:*`, SUBSCRIBE `update_requests`, PUBLISH
/// answers and notices on `updates:*` and answers on `replies:*`; with the Redis store, its keys and the Lua
/// scripts that touch them (scripts run with the caller's permissions, so the
/// commands they call are granted too). redis-rs runs scripts with EVALSHA and,
/// when the server does not have one yet, SCRIPT LOAD; it never sends EVAL.
pub fn storage_rules(ns: &str, prefix: &str, password: &str, connect: &str) -> Vec<String> {
    words(&format!(
        "on >{password} resetkeys ~{prefix}* resetchannels &{ns}updates:* &{ns}update_requests &{ns}replies:* &{ns}storage_nodes -@all \
         +psubscribe +punsubscribe +subscribe +unsubscribe +publish +ping {connect} \
         +evalsha +script|load +get +mget +set +del +pexpire +scan +zadd +zrangebylex +rpush +ltrim +llen +lindex +lrange"
    ))
}

/// What only the Redis store needs: its scripts and the commands they call
/// (`ZADD` files a new root in the listing's sorted set, `ZRANGEBYLEX` reads a
/// page of it; `RPUSH`, `LTRIM`, `LLEN`, `LINDEX` and `LRANGE` keep and read
/// each root's history list), and `SCAN` for the root count (the key rule
/// `~<prefix>*` goes too).
pub const KEY_COMMANDS: [&str; 15] = [
    "+evalsha",
    "+script|load",
    "+get",
    "+mget",
    "+set",
    "+del",
    "+pexpire",
    "+scan",
    "+zadd",
    "+zrangebylex",
    "+rpush",
    "+ltrim",
    "+llen",
    "+lindex",
    "+lrange",
];

/// A storage node on the embedded redb store: the storage rules without any key
/// access (SECURITY.md: "drop `~tikaconf:*` and `+evalsha ... +scan`").
pub fn redb_storage_rules(ns: &str, password: &str, connect: &str) -> Vec<String> {
    storage_rules(ns, "tikaconf:", password, connect)
        .into_iter()
        .filter(|w| !w.starts_with('~') && !KEY_COMMANDS.contains(&w.as_str()))
        .collect()
}

/// The `default` user: off, and no rights.
pub fn default_rules() -> Vec<String> {
    words("off resetkeys resetchannels -@all")
}

/// Splits rules into `redis-server --user` arguments, keeping a `( ... )` selector
/// as one argument.
pub fn words(rules: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut selector: Option<String> = None;
    for w in rules.split_whitespace() {
        match &mut selector {
            Some(s) => {
                s.push(' ');
                s.push_str(w);
                if w.ends_with(')') {
                    out.push(selector.take().unwrap());
                }
            }
            None if w.starts_with('(') && !w.ends_with(')') => selector = Some(w.to_owned()),
            None => out.push(w.to_owned()),
        }
    }
    out
}
