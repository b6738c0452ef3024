-- Renews an owner's lease on its webhook batches and takes over those of every owner whose
-- lease ran out, in one step (so each orphaned batch has one claimer): returns them.
-- ARGV[1]: the key prefix (P:store:); ARGV[2]: the owner; ARGV[3]: the lease (ms).
local base, owner = ARGV[1], ARGV[2]
local mine = base .. 'webhooks:' .. owner
redis.call('SET', base .. 'webhook-lease:' .. owner, '1', 'PX', ARGV[3])
redis.call('SADD', base .. 'webhook-owners', owner)
local claimed = {}
for _, other in ipairs(redis.call('SMEMBERS', base .. 'webhook-owners')) do
  if other ~= owner and redis.call('EXISTS', base .. 'webhook-lease:' .. other) == 0 then
    local theirs = base .. 'webhooks:' .. other
    local flat = redis.call('HGETALL', theirs)
    for i = 1, #flat, 2 do
      redis.call('HSET', mine, flat[i], flat[i + 1])
      claimed[#claimed + 1] = flat[i + 1]
    end
    redis.call('DEL', theirs)
    redis.call('SREM', base .. 'webhook-owners', other)
  end
end
return claimed
