-- Records a rotation unless another came first: returns 1 when done, 0 on a conflict.
-- KEYS[1]: the pairs hash ([app, generation] → pair), KEYS[2]: app → current generation.
-- ARGV[1]: app; ARGV[2]: the generation the caller saw as current ('' for config.toml's);
-- ARGV[3]: the replaced pair's field; ARGV[4]: config.toml's pair as generation 0 (used when
-- ARGV[2] is ''); ARGV[5]: when the replaced pair stops working (ms); ARGV[6]: the new
-- pair's field; ARGV[7]: the new pair; ARGV[8]: its generation.
local current = redis.call('HGET', KEYS[2], ARGV[1]) or ''
if current ~= ARGV[2] then
  return 0
end
if ARGV[2] == '' then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
else
  local replaced = cjson.decode(redis.call('HGET', KEYS[1], ARGV[3]))
  replaced.valid_until = tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], ARGV[3], cjson.encode(replaced))
end
redis.call('HSET', KEYS[1], ARGV[6], ARGV[7])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[8])
return 1
