#!lua name=roomcast
-- The roomcast function library: every roomcastd node loads it with
-- FUNCTION LOAD REPLACE when its command link connects (redis_link.c).
-- The build embeds this file into the binary (adapter/CMakeLists.txt), and
-- a node fills in the five @...@ placeholders below from its config and
-- the envelope key before loading it (rc__redis_library() in redis_lib.c),
-- so the last node to connect wins: every node of a cluster must use the
-- same values. The envelope key is created once in Redis (Penvkey, SET NX)
-- and read by every node: it lives in this library's text, which a client
-- with only FCALL and PUBLISH rights never sees (docs/REDIS.md).
--
-- Key layout (common/keys.h, docs/REDIS.md); P is key_prefix:
--   P{room}        channel: 'd|seq|t_us|mac|data' for durable messages
--   P{room}:meta   hash: seq (the latest), epoch (the seq base of the epoch)
--   P{room}:hist   list: 'seq|t_us|data', oldest first, HSIZE long at most
--   Psess:{sid}    a session snapshot; Psess:{sid}:used once it was resumed
-- SPDX-License-Identifier: MIT

local P = '@PREFIX@'             -- key_prefix: no quotes, braces, backslashes
local HSIZE = @HISTORY_SIZE@     -- history_size: messages kept per room
local TTL = @HISTORY_TTL_MS@     -- history_ttl_ms: keys live this long idle
local MAXB = @MAX_PUBLISH@       -- max_publish: largest data, in bytes
local K = '@ENVKEY@'             -- the envelope key, 64 hex digits

-- The largest seq: 2^53-1, JavaScript's Number.MAX_SAFE_INTEGER, so every
-- seq is exact in a JS client (and in this Lua's doubles). A room reaching
-- it refuses publishes instead of wrapping or rounding.
local MAXSEQ = 9007199254740991

-- The MAC of a durable envelope: a hex prefix of an HMAC-like nested sha1
-- under K (no length extension: the outer hash covers a fixed-size inner
-- digest). A raw PUBLISH cannot forge it without K. Room names hold no '|'.
local function mac(room, s, ts, data)
  local inner = redis.sha1hex(K .. '|' .. room .. '|' .. s .. '|' .. ts ..
                              '|' .. data)
  return string.sub(redis.sha1hex(K .. inner), 1, 32)
end

-- A room is named either by its key, P{room} (PROTOCOL.md section 5: a
-- real key, so Redis Cluster routes the call by it), or by its bare name
-- (the older form). Room names hold no braces, so a key of this prefix is
-- never taken for a room name.
local function room_of(key)
  local n = #P
  if #key > n + 2 and string.sub(key, 1, n + 1) == P .. '{'
      and string.sub(key, -1) == '}' then
    local room = string.sub(key, n + 2, -2)
    if not string.find(room, '[{}]') then
      return room
    end
  end
  return key
end

local function keys_of(room)
  local base = P .. '{' .. room .. '}'
  return base .. ':meta', base .. ':hist', base
end

-- FCALL roomcast_publish 1 <P{room} | room> <data>: the new seq.
-- Seq, history and publish in one atomic step. A room that is new, or whose
-- keys expired or were lost, starts a new epoch whose seq base is the
-- current time in microseconds (minus 1.7e15): later than any seq the lost
-- epoch reached, so a client's old `since` is detected as a gap, never
-- replayed against other messages. Epoch bases grow by 1e6 a second from
-- 6.5e13 (late 2026): they stay under MAXSEQ until about the year 2300.
local function publish(keys, args)
  local room, data = room_of(keys[1]), args[1]
  if data == nil or #data > MAXB then
    return redis.error_reply('ERR roomcast: data missing or over max_publish')
  end
  local meta, hist, chan = keys_of(room)
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local ts = string.format('%d', now_us)
  if redis.call('HSETNX', meta, 'epoch',
                string.format('%d', now_us - 1700000000000000)) == 1 then
    redis.call('HSET', meta, 'seq', redis.call('HGET', meta, 'epoch'))
  end
  local cur = tonumber(redis.call('HGET', meta, 'seq') or '0') or MAXSEQ
  if cur >= MAXSEQ or cur < 0 then
    return redis.error_reply('ERR roomcast: room seq at its bound 2^53-1')
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local s = string.format('%d', seq)
  if HSIZE > 0 then
    redis.call('RPUSH', hist, s .. '|' .. ts .. '|' .. data)
    redis.call('LTRIM', hist, -HSIZE, -1)
    redis.call('PEXPIRE', hist, TTL)
  end
  redis.call('PEXPIRE', meta, TTL)
  redis.call('PUBLISH', chan, 'd|' .. s .. '|' .. ts .. '|' ..
             mac(room, s, ts, data) .. '|' .. data)
  return seq
end

-- FCALL roomcast_history 1 <P{room} | room> <since>:
-- [latest, epoch, entries with seq > since...]; since < 0: latest and epoch
-- only. Flagged no-writes: it only reads.
local function history(keys, args)
  local meta, hist = keys_of(room_of(keys[1]))
  local since = tonumber(args[1]) or -1
  local out = { redis.call('HGET', meta, 'seq') or '0',
                redis.call('HGET', meta, 'epoch') or '0' }
  if since < 0 then return out end
  local entries = redis.call('LRANGE', hist, 0, -1)
  for i = 1, #entries do
    local e = entries[i]
    local p = string.find(e, '|', 1, true)
    if p and tonumber(string.sub(e, 1, p - 1)) > since then
      out[#out + 1] = e
    end
  end
  return out
end

-- FCALL roomcast_resume 1 <sid> <ttl_ms>: claim a resume token once, across
-- nodes, and take the session snapshot: nil when already used, '' when
-- there is none.
local function resume(keys, args)
  local base = P .. 'sess:{' .. keys[1] .. '}'
  if not redis.call('SET', base .. ':used', '1', 'NX', 'PX',
                    tonumber(args[1])) then
    return false
  end
  local snap = redis.call('GET', base)
  if snap then redis.call('DEL', base) end
  return snap or ''
end

redis.register_function('roomcast_resume', resume)
redis.register_function('roomcast_publish', publish)
redis.register_function{function_name='roomcast_history', callback=history,
                        flags={'no-writes'}}
