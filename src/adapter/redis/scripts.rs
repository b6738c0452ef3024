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
const HELPERS: &str = r"
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function register(nodes, node)
  if redis.call('ZSCORE', nodes, node) then return 0 end
  redis.call('ZADD', nodes, now_ms(), node)
  return 1
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
";

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
local listed = {}
local function set(channel, new)
  local old = tonumber(redis.call('HGET', KEYS[1], channel) or '0')
  if new == old then return end
  if new > 0 then
    redis.call('HSET', KEYS[1], channel, new)
  else
    redis.call('HDEL', KEYS[1], channel)
  end
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
end
for i = 6, #ARGV, 2 do
  listed[ARGV[i]] = true
  set(ARGV[i], tonumber(ARGV[i + 1]))
end
if ARGV[2] == '1' then
  for _, channel in ipairs(redis.call('HKEYS', KEYS[1])) do
    if not listed[channel] then set(channel, 0) end
  end
end
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
/// several nodes trying, exactly one does it); returns nil when it was not done, else the
/// channels vacated cluster-wide by it as quadruples: app, then its `transition` triple.
///
/// KEYS: nodes. ARGV: node id, timeout in ms, key prefix, then app id, vacate delay in ms
/// pairs (apps not listed: no delay).
const CLEAN_UP_NODE: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return false end
local now = now_ms()
if tonumber(score) >= now - tonumber(ARGV[2]) then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
local prefix, node = ARGV[3], ARGV[1]
local apps_key = prefix .. ':node:' .. node .. ':apps'
local delays = {}
for i = 4, #ARGV, 2 do delays[ARGV[i]] = ARGV[i + 1] end
local vacated = {}
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
  end
  redis.call('DEL', mine)
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
        }
    }
}
