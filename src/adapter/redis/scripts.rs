//! The Lua scripts that change the cluster's shared state, each one atomic in Redis, so two
//! nodes can never both see the same transition (a channel's first subscriber anywhere, a
//! dead node's cleanup) and the cluster-wide figures always equal the sum of the nodes' own.
//! Times come from Redis (`TIME`), not from the nodes' clocks. Key names: [`super::keys`].
//!
//! redis-rs sends each by its SHA1 (`EVALSHA`) and loads it on the first `NOSCRIPT`, so after a
//! Redis restart they are loaded again without help.

use deadpool_redis::redis::Script;

/// Put before each script that writes a node's state or reads the time. `now_ms()` is Redis's
/// clock in milliseconds; `register(nodes, node)` adds the node to the cluster if it is
/// missing (its first write, or it was taken for dead) and says so, so that no state is ever
/// written by a node a clean-up could not find; `transition` records an occupancy transition.
const HELPERS: &str = r#"
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function register(nodes, node)
  if redis.call('ZSCORE', nodes, node) then return 0 end
  redis.call('ZADD', nodes, now_ms(), node)
  return 1
end

-- Sets a node's counts in the hash `mine` to the field, count pairs of ARGV from index
-- `first` (and, when `replace`, every field not listed to 0), calling `moved(field, old, new)`
-- for each count that changed, so the caller moves the cluster's figure by the same amount.
local function set_node_counts(mine, first, replace, moved)
  local listed = {}
  local function set(field, new)
    local old = tonumber(redis.call('HGET', mine, field) or '0')
    if new == old then return end
    if new > 0 then
      redis.call('HSET', mine, field, new)
    else
      redis.call('HDEL', mine, field)
    end
    moved(field, old, new)
  end
  for i = first, #ARGV, 2 do
    listed[ARGV[i]] = true
    set(ARGV[i], tonumber(ARGV[i + 1]))
  end
  if replace then
    for _, field in ipairs(redis.call('HKEYS', mine)) do
      if not listed[field] then set(field, 0) end
    end
  end
end

-- A cluster-wide occupancy transition of `channel` of `app` (whose keys start with
-- `app_key`), as the triple the caller raises: `o` (occupied), `r` (re-occupied while its
-- vacate was still waiting: neither webhook is sent) or `v` with the token of its waiting
-- vacate (empty: no delay, raise it now). A waiting vacate is a key holding its token (gone
-- when the channel is re-occupied) and an entry of `P:vacating` due when the delay is over,
-- which the node that raised it confirms then, or any node's sweep if that node is gone.
local function transition(out, app, app_key, channel, occupied, delay_ms, prefix)
  local waiting = app_key .. ':vacating:' .. channel
  if occupied then
    if redis.call('DEL', waiting) == 1 then
      table.insert(out, 'r')
    else
      table.insert(out, 'o')
    end
    table.insert(out, channel)
    table.insert(out, '')
  else
    local token = ''
    if tonumber(delay_ms) > 0 then
      token = tostring(redis.call('INCR', prefix .. ':vacate-seq'))
      redis.call('SET', waiting, token, 'PX', 2 * tonumber(delay_ms) + 60000)
      redis.call('ZADD', prefix .. ':vacating', now_ms() + tonumber(delay_ms),
        app .. '\n' .. channel .. '\n' .. token)
    end
    table.insert(out, 'v')
    table.insert(out, channel)
    table.insert(out, token)
  end
end

-- Announces that `channel` of `app` (keys from `app_key`) has `count` subscribers
-- cluster-wide: `pusher_internal:subscription_count` to every node's subscribers (built here,
-- in the stream's order, so no older count can arrive last), as Pusher does on every change up
-- to 100 subscribers and at most once per 5 s above. Appends `c`, channel, and the count
-- announced (the caller raises the webhook) or `later:<ms>` (announce again then).
local function announce_count(out, app, app_key, channel, count, prefix)
  if string.sub(channel, 1, 9) == 'presence-' then return end
  local quiet = app_key .. ':count-quiet:' .. channel
  if count > 100 then
    local left = redis.call('PTTL', quiet)
    if left > 0 then
      table.insert(out, 'c')
      table.insert(out, channel)
      table.insert(out, 'later:' .. left)
      return
    end
    redis.call('SET', quiet, '1', 'PX', 5000)
  end
  local frame = '{"event":"pusher_internal:subscription_count","channel":"' .. channel
    .. '","data":"{\\"subscription_count\\":' .. count .. '}"}'
  redis.call('PUBLISH', prefix .. ':' .. app .. ':' .. channel, 'M1||' .. frame)
  table.insert(out, 'c')
  table.insert(out, channel)
  table.insert(out, tostring(count))
end

-- Moves signed-in user `user` of `app` (keys from `app_key`) by `delta` connections
-- cluster-wide; when that takes the user online or offline, tells the watchers on every node
-- (on the user's own channel, which their nodes subscribe to).
local function move_user(app_key, app, user, delta, prefix)
  local total = redis.call('HINCRBY', app_key .. ':users', user, delta)
  if total <= 0 then redis.call('HDEL', app_key .. ':users', user) end
  local channel = prefix .. ':' .. app .. ':#server-to-user-' .. user
  if total > 0 and total == delta then
    redis.call('PUBLISH', channel, 'W1|1')
  elseif total <= 0 and total - delta > 0 then
    redis.call('PUBLISH', channel, 'W1|0')
  end
end

-- One connection of `user` left the presence channel whose roster is `roster` (its other
-- keys add a suffix); when it was the user's last in the cluster, the user leaves the roster,
-- the stored `member_removed` goes out on `pubsub`, and 1 is returned.
local function leave_member(roster, user, pubsub)
  if redis.call('HINCRBY', roster .. ':sockets', user, -1) > 0 then return 0 end
  redis.call('HDEL', roster .. ':sockets', user)
  redis.call('HDEL', roster, user)
  local farewell = redis.call('HGET', roster .. ':farewells', user)
  redis.call('HDEL', roster .. ':farewells', user)
  if farewell then redis.call('PUBLISH', pubsub, farewell) end
  return 1
end

-- The user id of a node's presence entry `socket id\nuser id`.
local function entry_user(entry)
  return string.match(entry, '^[^\n]*\n(.*)$')
end
"#;

/// Sets node `N`'s subscriber counts of some channels of app `A` (or all of them: those not
/// listed become 0) and moves the cluster-wide counts by the same difference; returns whether
/// the node was registered by it (`1`/`0`), then the cluster-wide transitions as triples
/// (see `transition`).
///
/// KEYS: node's channels, cluster's channels, node's apps, nodes.
/// ARGV: app id, `1` to replace all or `0`, node id, key prefix, the app's vacate delay in
/// ms, then channel, count pairs.
const SYNC_CHANNELS: &str = r"
local transitions = { tostring(register(KEYS[4], ARGV[3])) }
local app_key = ARGV[4] .. ':app:' .. ARGV[1]
set_node_counts(KEYS[1], 6, ARGV[2] == '1', function(channel, old, new)
  local before = tonumber(redis.call('HGET', KEYS[2], channel) or '0')
  local after = before + new - old
  if after > 0 then
    redis.call('HSET', KEYS[2], channel, after)
  else
    redis.call('HDEL', KEYS[2], channel)
  end
  if before <= 0 and after > 0 then
    transition(transitions, ARGV[1], app_key, channel, true, ARGV[5], ARGV[4])
  elseif before > 0 and after <= 0 then
    transition(transitions, ARGV[1], app_key, channel, false, ARGV[5], ARGV[4])
  end
end)
redis.call('SADD', KEYS[3], ARGV[1])
return transitions
";

/// Sets node `N`'s connection count of app `A` and moves the cluster's total by the same
/// difference; returns whether the node was registered by it.
///
/// KEYS: cluster's connections, nodes' connections, node's apps, nodes.
/// ARGV: node id, count, app id.
const SYNC_CONNECTIONS: &str = r"
local registered = register(KEYS[4], ARGV[1])
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local new = tonumber(ARGV[2])
if new > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], new)
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local total = redis.call('INCRBY', KEYS[1], new - old)
if total < 0 then
  redis.call('SET', KEYS[1], 0)
  total = 0
end
redis.call('SADD', KEYS[3], ARGV[3])
return registered
";

/// Takes a place in app `A`'s cluster-wide quota for a connection of node `N`, unless the
/// quota is used up; returns 0 when refused, 1 when taken, 2 when taken and the node was
/// registered by it. The node's next count sync replaces the reservation with its own count.
///
/// KEYS: cluster's connections, nodes' connections, node's apps, nodes.
/// ARGV: quota, node id, app id.
const OPEN_CONNECTION: &str = r"
local total = tonumber(redis.call('GET', KEYS[1]) or '0')
if total >= tonumber(ARGV[1]) then return 0 end
local registered = register(KEYS[4], ARGV[2])
redis.call('INCR', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('SADD', KEYS[3], ARGV[3])
return 1 + registered
";

/// Records node `N`'s heartbeat; returns whether it was missing (new, or removed as dead),
/// then the nodes silent for longer than the timeout.
///
/// KEYS: nodes. ARGV: node id, timeout in ms.
const HEARTBEAT: &str = r"
local now = now_ms()
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
table.insert(dead, 1, tostring(added))
return dead
";

/// Removes the dead node `N` and everything it held, if it is still silent (so that of
/// several nodes trying, exactly one does it); returns nil when it was not done, else what
/// its going changed cluster-wide as quadruples: app, `m`, presence channel, user id for each
/// member it took away (their `member_removed` published here), then app and a `transition`
/// triple for each channel it vacated.
///
/// Subscription counts it changed are announced as `announce_count` does, each as app and its
/// triple.
///
/// KEYS: nodes. ARGV: node id, timeout in ms, key prefix, then app id, vacate delay in ms,
/// `1` when the app announces subscription counts (apps not listed: no delay, no counts).
const CLEAN_UP_NODE: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return false end
local now = now_ms()
if tonumber(score) >= now - tonumber(ARGV[2]) then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
local prefix, node = ARGV[3], ARGV[1]
local apps_key = prefix .. ':node:' .. node .. ':apps'
local delays, counted = {}, {}
for i = 4, #ARGV, 3 do
  delays[ARGV[i]] = ARGV[i + 1]
  counted[ARGV[i]] = ARGV[i + 2] == '1'
end
local vacated = {}
local presence = prefix .. ':node:' .. node .. ':presence'
for _, held in ipairs(redis.call('SMEMBERS', presence)) do
  local app, channel = string.match(held, '^(.-)\n(.*)$')
  if channel then
    local roster = prefix .. ':app:' .. app .. ':presence:' .. channel
    local mine = roster .. ':node:' .. node
    for _, entry in ipairs(redis.call('SMEMBERS', mine)) do
      local user = entry_user(entry)
      if user and leave_member(roster, user, prefix .. ':' .. app .. ':' .. channel) == 1 then
        table.insert(vacated, app)
        table.insert(vacated, 'm')
        table.insert(vacated, channel)
        table.insert(vacated, user)
      end
    end
    redis.call('DEL', mine)
  end
end
redis.call('DEL', presence)
for _, app in ipairs(redis.call('SMEMBERS', apps_key)) do
  local app_key = prefix .. ':app:' .. app
  local mine = app_key .. ':channels:' .. node
  local flat = redis.call('HGETALL', mine)
  for i = 1, #flat, 2 do
    local left = redis.call('HINCRBY', app_key .. ':channels', flat[i], -tonumber(flat[i + 1]))
    if left <= 0 then
      redis.call('HDEL', app_key .. ':channels', flat[i])
      table.insert(vacated, app)
      transition(vacated, app, app_key, flat[i], false, delays[app] or '0', prefix)
    end
    if counted[app] then
      local announced = {}
      announce_count(announced, app, app_key, flat[i], math.max(left, 0), prefix)
      if #announced > 0 then
        table.insert(vacated, app)
        for _, part in ipairs(announced) do table.insert(vacated, part) end
      end
    end
  end
  redis.call('DEL', mine)
  local users = app_key .. ':users:' .. node
  local signed_in = redis.call('HGETALL', users)
  for i = 1, #signed_in, 2 do
    move_user(app_key, app, signed_in[i], -tonumber(signed_in[i + 1]), prefix)
  end
  redis.call('DEL', users)
  local connections = redis.call('HGET', app_key .. ':node-connections', node)
  if connections then
    local total = redis.call('DECRBY', app_key .. ':connections', connections)
    if total < 0 then redis.call('SET', app_key .. ':connections', 0) end
    redis.call('HDEL', app_key .. ':node-connections', node)
  end
end
redis.call('DEL', apps_key)
return vacated
";

/// Adds a connection of node `N` to a presence channel, unless the channel is full and the
/// user not yet in it; publishes `member_added` when it is the user's first connection in the
/// cluster, then the join's marker, and returns `full`, or the user's first connection (`1`/`0`),
/// whether the node was registered by it, and the roster as user id, member pairs.
///
/// KEYS: roster, node's entries in the channel, node's presence channels, nodes.
/// ARGV: node id, pub/sub channel, `A\nC`, the entry `socket\nuser`, user id, member
/// `[user_id, user_info]`, most members, `member_added` message, `member_removed` message,
/// marker message.
const JOIN_PRESENCE: &str = r"
local user = ARGV[5]
if redis.call('HEXISTS', KEYS[1], user) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[7]) then
  return { 'full' }
end
local registered = register(KEYS[4], ARGV[1])
local first = 0
if redis.call('SADD', KEYS[2], ARGV[4]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[3])
  if redis.call('HINCRBY', KEYS[1] .. ':sockets', user, 1) == 1 then
    redis.call('HSET', KEYS[1], user, ARGV[6])
    redis.call('HSET', KEYS[1] .. ':farewells', user, ARGV[9])
    redis.call('PUBLISH', ARGV[2], ARGV[8])
    first = 1
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[10])
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, tostring(registered))
table.insert(reply, 1, tostring(first))
return reply
";

/// Takes a connection of node `N` out of a presence channel; 1 when that was the user's last
/// in the cluster (its `member_removed` is published), else 0.
///
/// KEYS: roster, node's entries in the channel, node's presence channels.
/// ARGV: pub/sub channel, `A\nC`, the entry `socket\nuser`, user id.
const LEAVE_PRESENCE: &str = r"
if redis.call('SREM', KEYS[2], ARGV[3]) == 0 then return 0 end
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
return leave_member(KEYS[1], ARGV[4], ARGV[1])
";

/// Makes node `N`'s connections in a presence channel exactly the listed ones (after Redis
/// was away or lost them), adding before it removes: a user missing from the roster is put
/// back and announced (`member_added`; clients may already know it, and pusher-js takes a
/// repeat in its stride, but one that was removed meanwhile, by a clean-up that took this
/// node for dead or by a Redis restart, must be told), and connections no longer listed leave
/// as `LEAVE_PRESENCE` would, announced. Returns `a` or `r`, user id pairs for the users that
/// joined or left the roster.
///
/// KEYS: roster, node's entries in the channel, node's presence channels, nodes.
/// ARGV: node id, pub/sub channel, `A\nC`, then for each connection: its entry
/// `socket\nuser`, user id, member, `member_removed` message, `member_added` message.
const SYNC_PRESENCE: &str = r"
register(KEYS[4], ARGV[1])
local listed = {}
local changed = {}
for i = 4, #ARGV, 5 do
  listed[ARGV[i]] = true
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    local user = ARGV[i + 1]
    if redis.call('HINCRBY', KEYS[1] .. ':sockets', user, 1) == 1 then
      redis.call('HSET', KEYS[1], user, ARGV[i + 2])
      redis.call('HSET', KEYS[1] .. ':farewells', user, ARGV[i + 3])
      redis.call('PUBLISH', ARGV[2], ARGV[i + 4])
      table.insert(changed, 'a')
      table.insert(changed, user)
    end
  end
end
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not listed[entry] then
    redis.call('SREM', KEYS[2], entry)
    local user = entry_user(entry)
    if user and leave_member(KEYS[1], user, ARGV[2]) == 1 then
      table.insert(changed, 'r')
      table.insert(changed, user)
    end
  end
end
if redis.call('SCARD', KEYS[2]) > 0 then
  redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('SREM', KEYS[3], ARGV[3])
end
return changed
";

/// Stores a cache channel's last event and publishes it to every node (the caller's too), in
/// one step, so no node can read an older event once the newer one is in the stream.
///
/// KEYS: the channel's cache. ARGV: frame, data, time to live in ms, pub/sub channel, message.
const CACHE_EVENT: &str = r"
redis.call('HSET', KEYS[1], 'frame', ARGV[1], 'data', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

/// Reads a cache channel's last event and publishes a marker of the read, so the reader adds
/// its socket exactly where the read happened in the channel's stream; returns frame, data
/// and the ms it has left, or nothing.
///
/// KEYS: the channel's cache. ARGV: pub/sub channel, marker message (none: read only).
const READ_CACHE: &str = r"
local stored = redis.call('HMGET', KEYS[1], 'frame', 'data')
local left = redis.call('PTTL', KEYS[1])
if ARGV[2] then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
if not stored[1] or left <= 0 then return {} end
return { stored[1], stored[2] or '', tostring(left) }
";

/// Reads a presence channel's roster and publishes a marker of the read (a refresh after the
/// reader's pub/sub connection was lost: it reconciles its subscribers at the marker);
/// returns user id, member pairs.
///
/// KEYS: roster. ARGV: pub/sub channel, marker message.
const READ_ROSTER: &str = r"
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
";

/// Announces a channel's cluster-wide subscription count now (a change inside a quiet window
/// is announced once the window is over); returns the `announce_count` triple.
///
/// KEYS: cluster's channels. ARGV: app id, channel, key prefix.
const ANNOUNCE_COUNT: &str = r"
local count = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
local out = {}
announce_count(out, ARGV[1], ARGV[3] .. ':app:' .. ARGV[1], ARGV[2], count, ARGV[3])
return out
";

/// Sets node `N`'s signed-in connections of users of app `A` (all of them: users not listed
/// have none) and moves the cluster's totals by the same difference; a user taken online or
/// offline cluster-wide is told to its watchers on every node. Returns whether the node was
/// registered by it.
///
/// KEYS: node's users, node's apps, nodes. ARGV: node id, app id, key prefix, `1` to replace
/// all or `0`, then user id, count pairs.
const SYNC_USERS: &str = r"
local registered = register(KEYS[3], ARGV[1])
local app_key = ARGV[3] .. ':app:' .. ARGV[2]
set_node_counts(KEYS[1], 5, ARGV[4] == '1', function(user, old, new)
  move_user(app_key, ARGV[2], user, new - old, ARGV[3])
end)
redis.call('SADD', KEYS[2], ARGV[2])
return registered
";

/// Takes the waiting vacate `entry` (`app\nchannel\ntoken`) off `P:vacating`; 1 when this
/// call took it and the channel was not re-occupied meanwhile (raise `channel_vacated`), else 0
/// (re-occupied, or another node took it first).
///
/// KEYS: `P:vacating`. ARGV: the entry, key prefix.
const CONFIRM_VACATE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local app, channel, token = string.match(ARGV[1], '^(.-)\n(.-)\n(.*)$')
if not token then return 0 end
local waiting = ARGV[2] .. ':app:' .. app .. ':vacating:' .. channel
if redis.call('GET', waiting) ~= token then return 0 end
redis.call('DEL', waiting)
return 1
";

/// Takes every waiting vacate that is overdue by `ARGV[2]` ms (its node did not confirm it:
/// gone, or cut off); returns the vacates to raise as app, channel pairs.
///
/// KEYS: `P:vacating`. ARGV: key prefix, grace in ms.
const SWEEP_VACATES: &str = r"
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, 1000)
local raise = {}
for _, entry in ipairs(due) do
  redis.call('ZREM', KEYS[1], entry)
  local app, channel, token = string.match(entry, '^(.-)\n(.-)\n(.*)$')
  if token then
    local waiting = ARGV[1] .. ':app:' .. app .. ':vacating:' .. channel
    if redis.call('GET', waiting) == token then
      redis.call('DEL', waiting)
      table.insert(raise, app)
      table.insert(raise, channel)
    end
  end
end
return raise
";

/// The scripts, hashed once.
pub struct Scripts {
    pub sync_channels: Script,
    pub sync_connections: Script,
    pub open_connection: Script,
    pub heartbeat: Script,
    pub clean_up_node: Script,
    pub confirm_vacate: Script,
    pub sweep_vacates: Script,
    pub join_presence: Script,
    pub leave_presence: Script,
    pub sync_presence: Script,
    pub cache_event: Script,
    pub read_cache: Script,
    pub read_roster: Script,
    pub announce_count: Script,
    pub sync_users: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            sync_channels: Script::new(&format!("{HELPERS}{SYNC_CHANNELS}")),
            sync_connections: Script::new(&format!("{HELPERS}{SYNC_CONNECTIONS}")),
            open_connection: Script::new(&format!("{HELPERS}{OPEN_CONNECTION}")),
            heartbeat: Script::new(&format!("{HELPERS}{HEARTBEAT}")),
            clean_up_node: Script::new(&format!("{HELPERS}{CLEAN_UP_NODE}")),
            confirm_vacate: Script::new(CONFIRM_VACATE),
            sweep_vacates: Script::new(&format!("{HELPERS}{SWEEP_VACATES}")),
            join_presence: Script::new(&format!("{HELPERS}{JOIN_PRESENCE}")),
            leave_presence: Script::new(&format!("{HELPERS}{LEAVE_PRESENCE}")),
            sync_presence: Script::new(&format!("{HELPERS}{SYNC_PRESENCE}")),
            cache_event: Script::new(CACHE_EVENT),
            read_cache: Script::new(READ_CACHE),
            read_roster: Script::new(READ_ROSTER),
            announce_count: Script::new(&format!("{HELPERS}{ANNOUNCE_COUNT}")),
            sync_users: Script::new(&format!("{HELPERS}{SYNC_USERS}")),
        }
    }
}
