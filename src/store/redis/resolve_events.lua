-- Resolves an app's unresolved events (all, or one), and lifts its lockdown when no
-- unresolved critical event is left, in one step: returns {events resolved, 1 if lifted}.
-- ARGV[1]: the key prefix (P:store:); ARGV[2]: app; ARGV[3]: the event's id ('' for all);
-- ARGV[4]: when (ms).
local base, app, only, at = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local events = base .. 'events:' .. app
local flat = redis.call('HGETALL', events)
local resolved, critical_left = 0, 0
for j = 1, #flat, 2 do
  local event = cjson.decode(flat[j + 1])
  if event.resolved == 0 and (only == '' or only == flat[j]) then
    event.resolved = at
    redis.call('HSET', events, flat[j], cjson.encode(event))
    resolved = resolved + 1
  end
  if event.severity == 'critical' and event.resolved == 0 then
    critical_left = critical_left + 1
  end
end
local lifted = 0
if critical_left == 0 then
  lifted = redis.call('HDEL', base .. 'lockdowns', app)
end
return {resolved, lifted}
