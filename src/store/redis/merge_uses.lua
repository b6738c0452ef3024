-- Adds uses to a hash of uses, in one step: field → [count, last_ms, address, via]; counts
-- add up, and the later use's time, address and via are kept.
-- KEYS[1]: the hash. ARGV: field, count, last_ms, address, via; repeated.
for i = 1, #ARGV, 5 do
  local field = ARGV[i]
  local count, last = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local address, via = ARGV[i + 3], ARGV[i + 4]
  local old = redis.call('HGET', KEYS[1], field)
  if old then
    local before = cjson.decode(old)
    count = count + before[1]
    if last < before[2] then
      last, address, via = before[2], before[3], before[4]
    end
  end
  redis.call('HSET', KEYS[1], field, cjson.encode({count, last, address, via}))
end
return 0
