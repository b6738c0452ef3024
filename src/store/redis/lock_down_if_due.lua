-- Locks an app down if it is not and enough distinct unresolved critical events were last
-- seen since a time, in one step (so one lockdown is taken once in the cluster): 1 if it did.
-- Distinct events, not rows: a kind from one source (a revoked token by its message, which
-- names it, whatever address presents it).
-- ARGV[1]: the key prefix (P:store:); ARGV[2]: app; ARGV[3]: since (ms); ARGV[4]: the
-- threshold; ARGV[5]: when (ms).
local base, app = ARGV[1], ARGV[2]
local since, threshold = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HEXISTS', base .. 'lockdowns', app) == 1 then
  return 0
end
local distinct, found = {}, 0
for _, text in ipairs(redis.call('HVALS', base .. 'events:' .. app)) do
  local event = cjson.decode(text)
  if event.severity == 'critical' and event.resolved == 0 and event.last >= since then
    local source = event.address
    if event.kind == 'revoked_token_used' then source = event.message end
    local one = event.kind .. '|' .. source
    if not distinct[one] then
      distinct[one] = true
      found = found + 1
    end
  end
end
if found < threshold then
  return 0
end
redis.call('HSET', base .. 'lockdowns', app, ARGV[5])
return 1
