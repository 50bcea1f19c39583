//! A store in Redis keys, which several storage nodes can share.
//!
//! A local redb file belongs to one node. When a deployment wants its storage
//! nodes to share one copy of the state (so any of them can answer a load request
//! with the latest head, and a node that was down catches up for free), the state
//! lives in Redis instead. Sharing is safe because every write is a
//! compare-and-set run as a Lua script, which Redis executes atomically: two nodes
//! storing the same patch at the same moment get one `Applied` and one
//! `AlreadyStored`, and a node with an out-of-date view gets `Stale` and writes
//! nothing.
//!
//! Keys (the prefix defaults to `tikaconf:` and should carry the deployment's
//! namespace so that deployments sharing a server never see each other's state):
//! - `{prefix}head:<root>` -> `"<head> <height>"`
//! - `{prefix}snap:<hash>` -> canonical snapshot bytes
//! - `{prefix}roots` -> sorted set of every registered root's hex hash (all
//!   scores 0, so ordered by hash), for listings by cursor
//! - `{prefix}reg:<root>` -> the height-0 snapshot the root was registered with
//!   (its connection info, kept when the head moves on)
//! - `{prefix}log:<root>` -> the root's history: a list of `"<height> <patch>"`
//!   entries in height order, appended by the commit script in the same atomic
//!   step as the head moves and trimmed to the last N under `last N` (see
//!   [`RedisStore::with_retention`]); untouched under `none`
//! - `{prefix}layout` -> `2` once every root is in `roots` (see
//!   [`RedisStore::index_roots`]; absent in a store written before the set)
//! - `{prefix}store_id` -> the store's identity, set by the first node to ask
//! - `{prefix}answerer` -> the storage node holding the answerer lease (expires)
//!
//! The scripts derive key names from the prefix themselves rather than receiving
//! them as `KEYS` (a `Stale` answer must read the snapshot of a head only known
//! inside the script), so this store targets standalone Redis (or a primary with
//! replicas), not Redis Cluster.
//!
//! Durability is Redis's: with `appendonly yes` and `appendfsync always` a script's
//! writes are synced once per call, which makes one batch one sync, as the store
//! contract asks. Other settings can lose acknowledged writes;
//! [`RedisStore::check_durability`] reads them (see [`crate::durability`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use redis::aio::ConnectionManager;
use redis::{Client, Script, Value};
use tikaconf_proto::{Hash, StoredHead};
use tikaconf_store::{
    HeadRef, ListedRoot, LoggedPatch, MAX_HISTORY, MAX_LIST_ROOTS, PersistCommit, PersistOutcome,
    Retention, Store, StoreError,
};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "tikaconf:";

/// Reads a root's head and its snapshot in one atomic step, so that a commit
/// racing the read cannot delete the snapshot between the two `GET`s.
///
/// ARGV: prefix, root. Returns `{}` or `{"<head> <height>", snapshot}`.
const LOAD: &str = r"
local cur = redis.call('GET', ARGV[1] .. 'head:' .. ARGV[2])
if not cur then return {} end
local sp = string.find(cur, ' ', 1, true)
if not sp then return {cur, false} end
return {cur, redis.call('GET', ARGV[1] .. 'snap:' .. string.sub(cur, 1, sp - 1))}
";

/// The store's identity: `{prefix}store_id`, set once by whichever node reads it
/// first.
///
/// ARGV: prefix, a fresh random id. Returns the id the store keeps.
const STORE_ID: &str = r"
local key = ARGV[1] .. 'store_id'
redis.call('SET', key, ARGV[2], 'NX')
return redis.call('GET', key)
";

/// Claims or renews the answerer lease `{prefix}answerer` for node ARGV[2], for
/// ARGV[3] milliseconds. Returns 1 if the node holds it now, else 0. Expiry is
/// Redis's own clock, so nodes' clocks never have to agree.
const CLAIM_ANSWERER: &str = r"
local key = ARGV[1] .. 'answerer'
local holder = redis.call('GET', key)
if holder == ARGV[2] then
  redis.call('PEXPIRE', key, ARGV[3])
  return 1
end
if not holder then
  redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Drops the answerer lease if node ARGV[2] holds it.
const RELEASE_ANSWERER: &str = r"
local key = ARGV[1] .. 'answerer'
if redis.call('GET', key) == ARGV[2] then redis.call('DEL', key) end
return 0
";

/// Registers a root at height 0 unless it exists.
///
/// ARGV: prefix, root, snapshot. Returns `{}` when it registered, else the current
/// head as [`LOAD`] does.
const REGISTER: &str = r"
local hkey = ARGV[1] .. 'head:' .. ARGV[2]
local cur = redis.call('GET', hkey)
if cur then
  local sp = string.find(cur, ' ', 1, true)
  if not sp then return {cur, false} end
  return {cur, redis.call('GET', ARGV[1] .. 'snap:' .. string.sub(cur, 1, sp - 1))}
end
redis.call('SET', ARGV[1] .. 'snap:' .. ARGV[2], ARGV[3])
redis.call('SET', ARGV[1] .. 'reg:' .. ARGV[2], ARGV[3])
redis.call('ZADD', ARGV[1] .. 'roots', 0, ARGV[2])
redis.call('SET', hkey, ARGV[2] .. ' 0')
return {}
";

/// Puts a batch of roots found by `SCAN` (ARGV[2..]) into the `roots` set, and
/// copies the snapshot of each one still at height 0 into its `reg:` key if it
/// has none (a root that moved on before registrations were kept has nothing
/// left to copy). Idempotent, so nodes running it at once do no harm. Uses only
/// the commands a storage node's ACL already grants (no `EXISTS`).
///
/// ARGV: prefix, root... Returns the number of roots newly put in the set.
const INDEX: &str = r"
local added = 0
for i = 2, #ARGV do
  local root = ARGV[i]
  local cur = redis.call('GET', ARGV[1] .. 'head:' .. root)
  if cur then
    added = added + redis.call('ZADD', ARGV[1] .. 'roots', 0, root)
    local reg = ARGV[1] .. 'reg:' .. root
    if string.sub(cur, -2) == ' 0' and not redis.call('GET', reg) then
      local snap = redis.call('GET', ARGV[1] .. 'snap:' .. root)
      if snap then redis.call('SET', reg, snap) end
    end
  end
end
return added
";

/// The value of `{prefix}layout` once every root is in the `roots` set.
const LAYOUT: &str = "2";

/// A page of the roots listing: up to ARGV[3] roots above ARGV[2] (`-` for the
/// first page, else `(<hex>`) from the `roots` sorted set, each with its head and
/// registration, read in one atomic step.
///
/// ARGV: prefix, lower bound, limit. Returns a flat array: root, head entry
/// (`"<head> <height>"` or false), registration (or false), per root.
const LIST: &str = r"
local roots = redis.call('ZRANGEBYLEX', ARGV[1] .. 'roots', ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, root in ipairs(roots) do
  out[#out + 1] = root
  out[#out + 1] = redis.call('GET', ARGV[1] .. 'head:' .. root)
  out[#out + 1] = redis.call('GET', ARGV[1] .. 'reg:' .. root)
end
return out
";

/// Applies a batch of compare-and-sets, in order, atomically, and logs each
/// applied commit's patch in its root's history.
///
/// ARGV: prefix, retention (`none`, `all` or the number of patches to keep),
/// then per commit: root, expected head, new head, new height, new snapshot,
/// patch (empty: none, nothing logged). Returns one entry per commit: `{1}` applied, `{2}` already stored,
/// `{3}` stale with the root unregistered, `{3, "<head> <height>", snapshot}`
/// stale. The new head is checked first so that a commit whose expected and new
/// heads are equal never deletes the snapshot it keeps.
///
/// All or nothing: Redis runs a script without interleaving, but does not roll
/// back what a script wrote before it failed (a `GET` of a key that holds
/// another type raises WRONGTYPE), and the store contract says that on an error
/// nothing of the batch was applied. So the script works in two phases: first it
/// decides every commit, reading through a local cache that also records its own
/// would-be writes (so that commits chained within the batch see each other,
/// exactly as if applied one by one), then, only once every read has succeeded,
/// it performs the recorded writes. `SET` and `DEL` raise no type errors, and
/// once a script has written Redis lets it finish its writes even past
/// `maxmemory`, so every failure happens before the first write. `RPUSH` and
/// `LTRIM` do raise WRONGTYPE, so the first phase runs an `LLEN` on each log
/// key it will write (once per key): that raises it there instead.
///
/// Why a list, and heights in the entries: a list costs a few bytes per entry
/// beside the patch (a sorted set costs some 80), `RPUSH` and `LTRIM` are each
/// O(1) per commit, and the newest entries are at the tail where reads start.
/// The heights make the entries say which height they are even where the list
/// has gaps (commits made by a node that keeps no history, on a shared store),
/// which positions alone could not.
const COMMIT: &str = r"
local prefix, keep = ARGV[1], ARGV[2]
local cache, writes, checked = {}, {}, {}
local function get(key)
  local v = cache[key]
  if v == nil then
    v = redis.call('GET', key)
    cache[key] = v
  end
  return v
end
local function set(key, value)
  cache[key] = value
  writes[#writes + 1] = {key, value}
end
local function del(key)
  cache[key] = false
  writes[#writes + 1] = {key}
end
local function log(root, height, patch)
  local lkey = prefix .. 'log:' .. root
  if not checked[lkey] then
    redis.call('LLEN', lkey)
    checked[lkey] = true
  end
  writes[#writes + 1] = {lkey, height .. ' ' .. patch, 'RPUSH'}
  if keep ~= 'all' then
    writes[#writes + 1] = {lkey, -tonumber(keep), 'LTRIM'}
  end
end
local out = {}
local i = 3
while i + 5 <= #ARGV do
  local root, expected, new = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local hkey = prefix .. 'head:' .. root
  local cur = get(hkey)
  local head = nil
  if cur then
    local sp = string.find(cur, ' ', 1, true)
    if sp then head = string.sub(cur, 1, sp - 1) else head = cur end
  end
  if not cur then
    out[#out + 1] = {3}
  elseif head == new then
    out[#out + 1] = {2}
  elseif head == expected then
    set(prefix .. 'snap:' .. new, ARGV[i + 4])
    set(hkey, new .. ' ' .. ARGV[i + 3])
    del(prefix .. 'snap:' .. expected)
    if keep ~= 'none' and ARGV[i + 5] ~= '' then log(root, ARGV[i + 3], ARGV[i + 5]) end
    out[#out + 1] = {1}
  else
    out[#out + 1] = {3, cur, get(prefix .. 'snap:' .. head)}
  end
  i = i + 6
end
for _, w in ipairs(writes) do
  if w[3] == 'RPUSH' then
    redis.call('RPUSH', w[1], w[2])
  elseif w[3] == 'LTRIM' then
    redis.call('LTRIM', w[1], w[2], -1)
  elseif w[2] == nil then
    redis.call('DEL', w[1])
  else
    redis.call('SET', w[1], w[2])
  end
end
return out
";

/// A page of a root's history, newest first: the entries of `log:<root>`
/// with heights below ARGV[3] (empty: all), at most ARGV[4], read in one
/// atomic step with the head (which the caller needs for the window).
///
/// Finding where the page starts: the entries are in height order, usually
/// without gaps, so the position of height `before - 1` is first computed from
/// the tail and checked with one `LINDEX`; where that misses (a gap), a binary
/// search by `LINDEX` finds it.
///
/// ARGV: prefix, root, before, limit. Returns `{}` for an unknown root, else
/// `{"<head> <height>", entry...}`.
const HISTORY: &str = r"
local cur = redis.call('GET', ARGV[1] .. 'head:' .. ARGV[2])
if not cur then return {} end
local lkey = ARGV[1] .. 'log:' .. ARGV[2]
local len = redis.call('LLEN', lkey)
local limit = tonumber(ARGV[4])
if len == 0 or limit == 0 then return {cur} end
local function height(i)
  return tonumber(string.match(redis.call('LINDEX', lkey, i), '^(%d+) '))
end
local hi = len - 1
if ARGV[3] ~= '' then
  local before = tonumber(ARGV[3])
  local last = height(len - 1)
  if last >= before then
    local guess = len - 1 - (last - before + 1)
    if guess >= 0 and height(guess) == before - 1 then
      hi = guess
    else
      local lo, top = 0, len - 1
      hi = -1
      while lo <= top do
        local mid = math.floor((lo + top) / 2)
        if height(mid) < before then hi = mid; lo = mid + 1 else top = mid - 1 end
      end
    end
  end
end
local out = {cur}
if hi < 0 then return out end
local entries = redis.call('LRANGE', lkey, math.max(0, hi - limit + 1), hi)
for j = #entries, 1, -1 do out[#out + 1] = entries[j] end
return out
";

/// The patches from height ARGV[3] up to the head, oldest first, read in one
/// atomic step with the head, or none when there are more than ARGV[4]. If
/// they are all there without a gap they are the list's last `need` entries,
/// so no search: the caller checks the heights.
///
/// ARGV: prefix, root, height, most. Returns `{}` for an unknown root, else
/// `{"<head> <height>", entry...}`.
const SINCE: &str = r"
local cur = redis.call('GET', ARGV[1] .. 'head:' .. ARGV[2])
if not cur then return {} end
local head = tonumber(string.match(cur, ' (%d+)$'))
local need = head and (head - tonumber(ARGV[3])) or 0
if need <= 0 or need > tonumber(ARGV[4]) then return {cur} end
local out = {cur}
for _, e in ipairs(redis.call('LRANGE', ARGV[1] .. 'log:' .. ARGV[2], -need, -1)) do
  out[#out + 1] = e
end
return out
";

/// A [`Store`] in Redis keys under a prefix. Cheap to clone; clones share one
/// connection.
///
/// The connection is a [`ConnectionManager`], which reconnects by itself after the
/// server restarts: an operation during the outage fails with
/// [`StoreError::Backend`], and the next one after it works again.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    scripts: Arc<Scripts>,
    /// This handle's setting (see [`RedisStore::with_retention`]).
    retention: Retention,
}

struct Scripts {
    load: Script,
    register: Script,
    commit: Script,
    list: Script,
    history: Script,
    since: Script,
    index: Script,
    store_id: Script,
    claim: Script,
    release: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://` or `rediss://`) and stores keys
    /// under `prefix` (e.g. `"tikaconf:prod:"`; [`DEFAULT_PREFIX`] when unsure).
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(redis_error)?;
        RedisStore::with_client(client, prefix).await
    }

    /// Like [`RedisStore::connect`], for a client built elsewhere (e.g. with TLS
    /// certificates through [`Client::build_with_tls`]).
    pub async fn with_client(client: Client, prefix: &str) -> Result<RedisStore, StoreError> {
        let conn = ConnectionManager::new(client).await.map_err(redis_error)?;
        Ok(RedisStore {
            conn,
            prefix: prefix.into(),
            retention: Retention::default(),
            scripts: Arc::new(Scripts {
                load: Script::new(LOAD),
                register: Script::new(REGISTER),
                commit: Script::new(COMMIT),
                list: Script::new(LIST),
                history: Script::new(HISTORY),
                since: Script::new(SINCE),
                index: Script::new(INDEX),
                store_id: Script::new(STORE_ID),
                claim: Script::new(CLAIM_ANSWERER),
                release: Script::new(RELEASE_ANSWERER),
            }),
        })
    }

    /// This store with `retention` for the history it keeps from now on (the
    /// default is [`Retention::default`]). It is this node's setting, not the
    /// store's: the nodes sharing a store should be given the same one. A
    /// smaller one than the store was written with hides the excess from reads
    /// at once and trims it from a root's list at the root's next commit.
    pub fn with_retention(mut self, retention: Retention) -> RedisStore {
        self.retention = retention;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Brings a store written before the `roots` set (which listings read) up
    /// to date: every root found by `SCAN` over `head:` keys is put in the set,
    /// with its registration when it is still at height 0; then `layout` says
    /// so and later calls return at once (one `GET`). Returns how many roots it
    /// added. A storage node calls it on start-up; it is safe to run from
    /// several nodes at once and to interrupt (it starts over next time).
    ///
    /// Why not in a Lua script: a scan of a million keys inside one script
    /// would block the server for seconds; here each `SCAN` page is one short
    /// script.
    pub async fn index_roots(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let layout_key = format!("{}layout", self.prefix);
        let layout: Option<String> = redis::cmd("GET")
            .arg(&layout_key)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        if layout.as_deref() == Some(LAYOUT) {
            return Ok(0);
        }
        let pattern = format!("{}head:*", glob_escape(&self.prefix));
        let head_prefix = format!("{}head:", self.prefix);
        let mut cursor: u64 = 0;
        let mut added = 0;
        loop {
            let (next, keys) = scan_page(&mut conn, &pattern, cursor).await?;
            let roots: Vec<&str> = keys
                .iter()
                .filter_map(|k| std::str::from_utf8(k).ok()?.strip_prefix(&head_prefix))
                .collect();
            if !roots.is_empty() {
                let mut invocation = self.scripts.index.arg(&*self.prefix);
                for root in &roots {
                    invocation.arg(*root);
                }
                let n: u64 = invocation
                    .invoke_async(&mut conn)
                    .await
                    .map_err(redis_error)?;
                added += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let () = redis::cmd("SET")
            .arg(&layout_key)
            .arg(LAYOUT)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(added)
    }

    /// Reads Redis's persistence settings and fails unless they keep every
    /// acknowledged write, or lose no more than `accepted` says (see
    /// [`crate::durability`]). A storage node calls this before it acknowledges
    /// anything; it returns what it found.
    pub async fn check_durability(
        &self,
        accepted: crate::AcceptedLoss,
    ) -> Result<crate::Persistence, crate::DurabilityError> {
        let mut conn = self.conn.clone();
        crate::durability::check(&mut conn, accepted).await
    }
}

fn redis_error(e: redis::RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

fn corrupt(what: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Parses a `"<head> <height>"` head key's value for `root`.
fn parse_head_ref(root: Hash, head: &Value) -> Result<HeadRef, StoreError> {
    let text = match head {
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| corrupt(format_args!("head of root {root} is not UTF-8")))?,
        other => {
            return Err(corrupt(format_args!(
                "head of root {root}: unexpected {other:?}"
            )));
        }
    };
    let bad = || {
        corrupt(format_args!(
            "head of root {root} is {text:?}, not \"<hash> <height>\""
        ))
    };
    let (hash, height) = text.split_once(' ').ok_or_else(bad)?;
    Ok(HeadRef {
        head: hash.parse().map_err(|_| bad())?,
        height: height.parse().map_err(|_| bad())?,
    })
}

/// Parses a `"<height> <patch>"` entry of `root`'s history list.
fn parse_entry(root: Hash, entry: &Value) -> Result<(u64, Bytes), StoreError> {
    let bad = || {
        corrupt(format_args!(
            "history entry of root {root} is not \"<height> <patch>\""
        ))
    };
    let Value::BulkString(bytes) = entry else {
        return Err(bad());
    };
    let space = bytes.iter().position(|b| *b == b' ').ok_or_else(bad)?;
    let height = std::str::from_utf8(&bytes[..space])
        .ok()
        .and_then(|h| h.parse().ok())
        .ok_or_else(bad)?;
    Ok((height, Bytes::copy_from_slice(&bytes[space + 1..])))
}

/// Parses a script's `{"<head> <height>", snapshot}` answer for `root`.
fn parse_head(
    root: Hash,
    head: &Value,
    snapshot: Option<&Value>,
) -> Result<StoredHead, StoreError> {
    let HeadRef { head: hash, height } = parse_head_ref(root, head)?;
    let snapshot = match snapshot {
        Some(Value::BulkString(bytes)) => Bytes::copy_from_slice(bytes),
        _ => {
            return Err(corrupt(format_args!(
                "root {root} points at {hash}, which has no snapshot"
            )));
        }
    };
    Ok(StoredHead {
        root,
        head: hash,
        height,
        snapshot,
    })
}

/// Parses the `{}` / `{head, snapshot}` answer of the load and register scripts.
fn parse_optional_head(root: Hash, value: Value) -> Result<Option<StoredHead>, StoreError> {
    match value {
        Value::Array(items) if items.is_empty() => Ok(None),
        Value::Array(items) => parse_head(root, &items[0], items.get(1)).map(Some),
        other => Err(corrupt(format_args!("unexpected script reply {other:?}"))),
    }
}

fn parse_outcome(root: Hash, value: &Value) -> Result<PersistOutcome, StoreError> {
    let items = match value {
        Value::Array(items) => items,
        other => return Err(corrupt(format_args!("unexpected commit reply {other:?}"))),
    };
    match items.first() {
        Some(Value::Int(1)) => Ok(PersistOutcome::Applied),
        Some(Value::Int(2)) => Ok(PersistOutcome::AlreadyStored),
        Some(Value::Int(3)) => match items.get(1) {
            None | Some(Value::Nil) => Ok(PersistOutcome::Stale { current: None }),
            Some(head) => Ok(PersistOutcome::Stale {
                current: Some(parse_head(root, head, items.get(2))?),
            }),
        },
        _ => Err(corrupt(format_args!("unexpected commit reply {items:?}"))),
    }
}

/// One page of `SCAN cursor MATCH pattern COUNT 1000`: the next cursor (0 at
/// the end) and the keys, which may repeat across pages.
async fn scan_page(
    conn: &mut ConnectionManager,
    pattern: &str,
    cursor: u64,
) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .query_async(conn)
        .await
        .map_err(redis_error)
}

/// Escapes glob characters so that a prefix matches only itself in `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store for RedisStore {
    async fn load(&self, root: Hash) -> Result<Option<StoredHead>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Value = self
            .scripts
            .load
            .arg(&*self.prefix)
            .arg(root.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        parse_optional_head(root, reply)
    }

    async fn register(&self, head: StoredHead) -> Result<StoredHead, StoreError> {
        if head.head != head.root || head.height != 0 {
            return Err(StoreError::Invalid(format!(
                "register must be at height 0 with head == root, got root {} head {} height {}",
                head.root, head.head, head.height
            )));
        }
        let mut conn = self.conn.clone();
        let reply: Value = self
            .scripts
            .register
            .arg(&*self.prefix)
            .arg(head.root.to_string())
            .arg(head.snapshot.as_ref())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(parse_optional_head(head.root, reply)?.unwrap_or(head))
    }

    async fn commit(&self, batch: Vec<PersistCommit>) -> Result<Vec<PersistOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.commit.prepare_invoke();
        invocation
            .arg(&*self.prefix)
            .arg(self.retention.to_string());
        let logs = self.retention.logs();
        for commit in &batch {
            let patch = commit.patch.as_deref().filter(|_| logs).unwrap_or_default();
            invocation
                .arg(commit.new.root.to_string())
                .arg(commit.expected_head.to_string())
                .arg(commit.new.head.to_string())
                .arg(commit.new.height)
                .arg(commit.new.snapshot.as_ref())
                .arg(patch);
        }
        let mut conn = self.conn.clone();
        let reply: Value = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let items = match reply {
            Value::Array(items) if items.len() == batch.len() => items,
            other => {
                return Err(corrupt(format_args!(
                    "commit of {} returned {other:?}",
                    batch.len()
                )));
            }
        };
        batch
            .iter()
            .zip(&items)
            .map(|(commit, item)| parse_outcome(commit.new.root, item))
            .collect()
    }

    async fn root_count(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}head:*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        // SCAN may return a key twice (while the keyspace is rehashed), so count
        // distinct keys.
        let mut seen = std::collections::HashSet::new();
        loop {
            let (next, keys) = scan_page(&mut conn, &pattern, cursor).await?;
            seen.extend(keys);
            if next == 0 {
                return Ok(seen.len() as u64);
            }
            cursor = next;
        }
    }

    async fn store_id(&self) -> Result<String, StoreError> {
        let mut conn = self.conn.clone();
        let fresh = format!("{:032x}", rand::random::<u128>());
        let id: String = self
            .scripts
            .store_id
            .arg(&*self.prefix)
            .arg(fresh)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(id)
    }

    async fn claim_answerer(&self, node: String, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let held: i64 = self
            .scripts
            .claim
            .arg(&*self.prefix)
            .arg(node)
            .arg(millis)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(held == 1)
    }

    async fn release_answerer(&self, node: String) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .release
            .arg(&*self.prefix)
            .arg(node)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    /// One script reading the `roots` sorted set by hash and each listed root's
    /// head and registration. Roots registered by a version of this store
    /// that did not keep the set are not listed (nothing else orders them).
    async fn list_roots(
        &self,
        after: Option<Hash>,
        limit: usize,
    ) -> Result<Vec<ListedRoot>, StoreError> {
        let limit = limit.min(MAX_LIST_ROOTS);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lower = after.map_or_else(|| "-".to_owned(), |after| format!("({after}"));
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self
            .scripts
            .list
            .arg(&*self.prefix)
            .arg(lower)
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut listed = Vec::with_capacity(reply.len() / 3);
        for entry in reply.chunks(3) {
            let [root, head, registration] = entry else {
                return Err(corrupt(format_args!("unexpected listing reply {entry:?}")));
            };
            let root: Hash = match root {
                Value::BulkString(b) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt(format_args!("bad root in the roots set: {b:?}")))?,
                other => {
                    return Err(corrupt(format_args!(
                        "bad root in the roots set: {other:?}"
                    )));
                }
            };
            // Listed but not registered (a half-written key set): skipped, as
            // a load would find nothing either.
            if matches!(head, Value::Nil | Value::Boolean(false)) {
                continue;
            }
            let head = parse_head_ref(root, head)?;
            let registration = match registration {
                Value::BulkString(b) => Some(Bytes::copy_from_slice(b)),
                _ => None,
            };
            listed.push(ListedRoot::new(root, head, registration));
        }
        Ok(listed)
    }

    fn retention(&self) -> Retention {
        self.retention
    }

    async fn history(
        &self,
        root: Hash,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LoggedPatch>, StoreError> {
        let limit = limit.min(MAX_HISTORY);
        if !self.retention.logs() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self
            .scripts
            .history
            .arg(&*self.prefix)
            .arg(root.to_string())
            .arg(before.map(|b| b.to_string()).unwrap_or_default())
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let Some((head, entries)) = reply.split_first() else {
            return Ok(Vec::new());
        };
        let head = parse_head_ref(root, head)?;
        let entries = entries
            .iter()
            .map(|e| parse_entry(root, e))
            .collect::<Result<Vec<_>, _>>()?;
        // Newest first from the script; the window is applied here.
        Ok(tikaconf_store::history_page(
            self.retention,
            head.height,
            entries.into_iter().rev(),
            before,
            limit,
        ))
    }

    async fn patches_since(
        &self,
        root: Hash,
        height: u64,
        max: usize,
    ) -> Result<Option<Vec<Bytes>>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self
            .scripts
            .since
            .arg(&*self.prefix)
            .arg(root.to_string())
            .arg(height)
            .arg(max.min(MAX_HISTORY))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let Some((head, entries)) = reply.split_first() else {
            return Ok(None);
        };
        let head = parse_head_ref(root, head)?;
        let entries = entries
            .iter()
            .map(|e| parse_entry(root, e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tikaconf_store::patches_since_from(
            self.retention,
            head.height,
            height,
            max,
            entries.into_iter(),
        ))
    }

    /// One `MGET` of the head keys: a few dozen bytes per root, no snapshot.
    async fn heads(&self, roots: Vec<Hash>) -> Result<Vec<Option<HeadRef>>, StoreError> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for root in &roots {
            mget.arg(format!("{}head:{root}", self.prefix));
        }
        let mut conn = self.conn.clone();
        let values: Vec<Value> = mget.query_async(&mut conn).await.map_err(redis_error)?;
        if values.len() != roots.len() {
            return Err(corrupt(format_args!(
                "MGET of {} heads returned {}",
                roots.len(),
                values.len()
            )));
        }
        roots
            .iter()
            .zip(&values)
            .map(|(root, value)| match value {
                Value::Nil => Ok(None),
                head => parse_head_ref(*root, head).map(Some),
            })
            .collect()
    }
}
