-- GCRA over Redis's clock for one request, in every bucket or none. A bucket's value is its
-- theoretical arrival time (µs); a request of cost c at `now` is admitted when
-- max(tat, now) + c * interval - burst * interval <= now, which allows `burst` at once and
-- then one per interval.
-- KEYS: one per bucket. ARGV: per bucket: interval (µs), burst, cost.
-- Returns {0, 0} when admitted, {i, ms} when bucket i refused (room again in ms).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst, cost = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local next_tat = tat + cost * interval
  local allowed_at = next_tat - burst * interval
  if allowed_at > now then
    return {i, math.ceil((allowed_at - now) / 1000)}
  end
  next_tats[i] = next_tat
end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((next_tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', next_tats[i]), 'PX', ttl)
end
return {0, 0}
