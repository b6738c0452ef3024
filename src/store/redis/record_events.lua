-- Adds security events to the activity log, then prunes it to its bound, in one step.
-- An event is kept per app as id → JSON, and found by its key (kind|address|window).
-- ARGV[1]: the key prefix (P:store:); ARGV[2]: the most events kept; then per entry: app,
-- kind, severity, address ('' for none), message, window_ms, first_ms, last_ms, count.
local base, most = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 9 do
  local app = ARGV[i]
  local events, keys = base .. 'events:' .. app, base .. 'event-keys:' .. app
  local key = ARGV[i + 1] .. '|' .. ARGV[i + 3] .. '|' .. ARGV[i + 5]
  local first, last = tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
  local count = tonumber(ARGV[i + 8])
  local id = redis.call('HGET', keys, key)
  if id then
    local event = cjson.decode(redis.call('HGET', events, id))
    event.count = event.count + count
    if first < event.first then event.first = first end
    if last > event.last then event.last = last end
    -- Seen again after its resolution: news to the admin again.
    if event.resolved > 0 and last > event.resolved then event.resolved = 0 end
    redis.call('HSET', events, id, cjson.encode(event))
  else
    id = redis.call('INCR', base .. 'event-seq')
    redis.call('HSET', keys, key, id)
    redis.call('HSET', events, id, cjson.encode({
      key = key, kind = ARGV[i + 1], severity = ARGV[i + 2], address = ARGV[i + 3],
      message = ARGV[i + 4], window = tonumber(ARGV[i + 5]), first = first, last = last,
      count = count, resolved = 0,
    }))
    redis.call('SADD', base .. 'event-apps', app)
    redis.call('INCR', base .. 'event-count')
  end
end
local excess = tonumber(redis.call('GET', base .. 'event-count') or '0') - most
if excess <= 0 then
  return 0
end
-- Oldest info first, then warnings and resolved critical events, unresolved critical last.
local all = {}
for _, app in ipairs(redis.call('SMEMBERS', base .. 'event-apps')) do
  local flat = redis.call('HGETALL', base .. 'events:' .. app)
  for j = 1, #flat, 2 do
    local event = cjson.decode(flat[j + 1])
    local class = 1
    if event.severity == 'info' then
      class = 0
    elseif event.severity == 'critical' and event.resolved == 0 then
      class = 2
    end
    all[#all + 1] = {class, event.last, tonumber(flat[j]), app, event.key}
  end
end
table.sort(all, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end)
for k = 1, math.min(excess, #all) do
  local dropped = all[k]
  redis.call('HDEL', base .. 'events:' .. dropped[4], dropped[3])
  redis.call('HDEL', base .. 'event-keys:' .. dropped[4], dropped[5])
  redis.call('DECR', base .. 'event-count')
end
return excess
