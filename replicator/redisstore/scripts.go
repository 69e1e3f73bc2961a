package redisstore

// A session is one Redis hash; the session ID is its hash tag. Fields:
// o owner, e epoch, v version, c created, l last access, i idle timeout,
// d deadline, p principal, "a:"+name one attribute. Times are unix
// nanoseconds of the application's clock; Redis's clock is used only for
// the relative TTL. A destroyed session is a hash holding x (the reason
// byte, or "r:"+newID after a rename) until its TTL ends; writes that
// arrive later land in it and stay invisible.
//
// Commits are MULTI/EXEC transactions of plain commands (store.go); the
// rarer operations below are Lua scripts, run on the master of the
// session's slot.

// invalidateScript destroys a session: the hash goes, a tombstone stays.
//
//	KEYS[1] session hash
//	ARGV[1] tombstone value (reason byte, or "r:"+newID)
//	ARGV[2] tombstone TTL in ms
//	ARGV[3] "1": return the whole hash (for a rename), "" only the principal
//
// Reply: {principal or false, fields or false}; error HANODE_DESTROYED
// when the session is already a tombstone.
const invalidateScript = `
if redis.call('HEXISTS', KEYS[1], 'x') == 1 then
  return redis.error_reply('HANODE_DESTROYED')
end
local p = redis.call('HGET', KEYS[1], 'p')
local all = false
if ARGV[3] == '1' then
  all = redis.call('HGETALL', KEYS[1])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'x', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
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
local f = redis.call('HMGET', h, 'l', 'i', 'd', 'x')
if not f[1] or f[4] then
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

// importScript writes a whole session unless the key exists (a session or
// a tombstone already there wins).
//
//	KEYS[1] session hash
//	ARGV[1] TTL in ms (0 = none)  ARGV[2..] field, value pairs
//
// Reply: 1 when written, 0 when the key existed.
const importScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`
