package redisstore

// The Lua scripts run on the Redis master that owns the session's slot.
// Every key a script touches carries the session's hash tag, so one
// script never spans two slots. Times are unix nanoseconds of the
// application's clock; Redis's clock is used only for the relative TTL.
//
// Hash fields: o owner, e epoch, v version, c created, l last access,
// i idle timeout, d deadline, p principal, z live bytes of attributes,
// "a:"+name one attribute. The tombstone is a string key holding the
// reason byte, or "r:"+newID after a rename.

// commitScript applies one delta.
//
//	KEYS[1] session hash, KEYS[2] tombstone
//	ARGV[1] owner  ARGV[2] epoch  ARGV[3] created  ARGV[4] last access
//	ARGV[5] idle   ARGV[6] deadline  ARGV[7] TTL in ms (0 = none)
//	ARGV[8] principal: "" unchanged, otherwise "=" followed by the value
//	ARGV[9] max session bytes  ARGV[10] reserved ("")
//	ARGV[11..] triples: kind ("s" set, "d" delete, "f" raw field copy),
//	name, value ("" for deletes)
//
// Reply: {version, old principal or false}; errors HANODE_DESTROYED,
// HANODE_TOOLARGE <size>.
const commitScript = `
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('HANODE_DESTROYED')
end
local h = KEYS[1]
local n = #ARGV
local fresh = redis.call('EXISTS', h) == 0
for i = 11, n, 3 do
  if ARGV[i] == 'f' then
    redis.call('HSET', h, ARGV[i+1], ARGV[i+2])
  end
end
local size = tonumber(redis.call('HGET', h, 'z') or '0')
for i = 11, n, 3 do
  local kind, f = ARGV[i], ARGV[i+1]
  if kind == 's' or kind == 'd' then
    local name = 'a:' .. f
    local old = redis.call('HSTRLEN', h, name)
    if old > 0 or redis.call('HEXISTS', h, name) == 1 then
      size = size - old - #f
    end
    if kind == 's' then
      size = size + #ARGV[i+2] + #f
    end
  end
end
if size > tonumber(ARGV[9]) then
  if fresh then
    redis.call('DEL', h)
  end
  return redis.error_reply('HANODE_TOOLARGE ' .. size)
end
local e = tonumber(redis.call('HGET', h, 'e') or '-1')
for i = 11, n, 3 do
  local kind, f, v = ARGV[i], ARGV[i+1], ARGV[i+2]
  if kind == 's' then
    redis.call('HSET', h, 'a:' .. f, v)
  elseif kind == 'd' then
    redis.call('HDEL', h, 'a:' .. f)
  end
end
if tonumber(ARGV[2]) >= e then
  redis.call('HSET', h, 'e', ARGV[2], 'o', ARGV[1])
end
redis.call('HSETNX', h, 'c', ARGV[3])
local l = tonumber(redis.call('HGET', h, 'l') or '0')
if tonumber(ARGV[4]) > l then
  redis.call('HSET', h, 'l', ARGV[4])
end
redis.call('HSET', h, 'i', ARGV[5], 'd', ARGV[6], 'z', size)
local oldp = redis.call('HGET', h, 'p')
if ARGV[8] ~= '' then
  redis.call('HSET', h, 'p', string.sub(ARGV[8], 2))
end
local v = redis.call('HINCRBY', h, 'v', 1)
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', h, ttl)
else
  redis.call('PERSIST', h)
end
return {v, oldp}
`

// invalidateScript destroys a session: the hash goes, a tombstone stays.
//
//	KEYS[1] session hash, KEYS[2] tombstone
//	ARGV[1] tombstone value (reason byte, or "r:"+newID)
//	ARGV[2] tombstone TTL in ms
//	ARGV[3] "1": return the whole hash (for a rename), "" only the principal
//
// Reply: {principal or false, fields or false}; error HANODE_DESTROYED
// when the session is already a tombstone.
const invalidateScript = `
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('HANODE_DESTROYED')
end
local p = redis.call('HGET', KEYS[1], 'p')
local all = false
if ARGV[3] == '1' then
  all = redis.call('HGETALL', KEYS[1])
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {p, all}
`

// touchScript records an access without changes and extends the TTL.
//
//	KEYS[1] session hash
//	ARGV[1] last access  ARGV[2] idle grace in ms
//
// Reply: 1 when the session exists, 0 otherwise.
const touchScript = `
local h = KEYS[1]
local f = redis.call('HMGET', h, 'l', 'i', 'd')
if not f[1] then
  return 0
end
local last = tonumber(ARGV[1])
if last > tonumber(f[1]) then
  redis.call('HSET', h, 'l', ARGV[1])
else
  last = tonumber(f[1])
end
local idle, dl = tonumber(f[2] or '0'), tonumber(f[3] or '0')
local ttl = -1
if idle > 0 then
  ttl = idle / 1000000 + tonumber(ARGV[2])
end
if dl > 0 then
  local rest = (dl - last) / 1000000
  if ttl < 0 or rest < ttl then
    ttl = rest
  end
end
if ttl >= 0 then
  redis.call('PEXPIRE', h, math.max(1, math.floor(ttl)))
end
return 1
`
