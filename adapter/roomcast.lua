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
--   P{room}        key: a stream holding the room's whole durable state,
--                  one entry per durable message, id '<seq>-0', fields
--                  t (publish time, us), e (the epoch's seq base), d
--                  (data), r (the writing master's lineage, below); the
--                  latest entry gives seq, epoch and lineage, trimming
--                  keeps max(history_size, 1) entries. One key, so Redis
--                  Cluster routes the FCALL by a key that exists and a
--                  slot migration moves the room in one MIGRATE.
--   P{room}        channel (another namespace): 'd|seq|t_us|mac|data' for
--                  durable messages, published with @PUBCMD@
--   Psess:{sid}    a session snapshot; Psess:{sid}:used once it was resumed
-- Rooms published by an older library (P{room}:meta, a hash, and
-- P{room}:hist, a list) move into the stream on their next publish.
-- SPDX-License-Identifier: MIT

local P = '@PREFIX@'             -- key_prefix: no quotes, braces, backslashes
local HSIZE = @HISTORY_SIZE@     -- history_size: messages kept per room
local TTL = @HISTORY_TTL_MS@     -- history_ttl_ms: keys live this long idle
local MAXB = @MAX_PUBLISH@       -- max_publish: largest data, in bytes
local K = '@ENVKEY@'             -- the envelope key, 64 hex digits
local PUB = '@PUBCMD@'           -- PUBLISH; SPUBLISH on Redis Cluster

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
-- (the older form: redis:// and Sentinel only). Room names hold no braces,
-- so a key of this prefix is never taken for a room name.
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

-- The seq of a stream id '<seq>-0'.
local function id_seq(id)
  return tonumber(string.match(id, '^(%d+)-')) or MAXSEQ + 1
end

-- The room's latest entry: seq (a number), epoch (its decimal) and the
-- lineage that wrote it (nil for an entry of an older library), or nil.
local function latest(k)
  local last = redis.call('XREVRANGE', k, '+', '-', 'COUNT', 1)
  if not last[1] then return nil end
  return id_seq(last[1][1]), last[1][2][4] or '0', last[1][2][8]
end

-- The lineage of the master running this call: the first 8 hex digits of
-- its replication id. A replica promoted to master gets a new one, so an
-- entry written under another lineage may be followed, on the old master,
-- by writes that never reached this one and that nodes already delivered
-- with the seqs this master would hand out again.
local function lineage()
  return string.match(redis.call('INFO', 'replication'),
                      'master_replid:(%x%x%x%x%x%x%x%x)') or '-'
end

-- An older library's room: its seq and epoch (and history, copied into the
-- stream k so a client's since still resumes), then its two keys go.
-- Those keys share the room's hash tag, hence its slot.
local function upgrade(k)
  local meta, hist = k .. ':meta', k .. ':hist'
  local oseq = redis.call('HGET', meta, 'seq')
  if not oseq then return nil end
  local epoch = redis.call('HGET', meta, 'epoch') or '0'
  local cur = tonumber(oseq) or MAXSEQ + 1
  if cur >= 0 and cur <= MAXSEQ and HSIZE > 0 then
    local prev = 0
    for _, e in ipairs(redis.call('LRANGE', hist, 0, -1)) do
      local s, ts, d = string.match(e, '^(%d+)|(%d+)|(.*)$')
      local n = tonumber(s or '')
      if n and n > prev and n <= cur then
        redis.call('XADD', k, 'MAXLEN', HSIZE, string.format('%d-0', n),
                   't', ts, 'e', epoch, 'd', d)
        prev = n
      end
    end
  end
  redis.call('DEL', meta, hist)
  return cur, epoch
end

-- FCALL roomcast_publish 1 <P{room} | room> <data>: the new seq.
-- Seq, history and publish in one atomic step, on the one key P{room}. A
-- room that is new, or whose key expired or was lost, starts a new epoch
-- whose seq base is the current time in microseconds (minus 1.7e15):
-- later than any seq the lost epoch reached, so a client's old `since` is
-- detected as a gap, never replayed against other messages. Epoch bases
-- grow by 1e6 a second from 6.5e13 (late 2026): they stay under MAXSEQ
-- until about the year 2300.
local function publish(keys, args)
  local room, data = room_of(keys[1]), args[1]
  if data == nil or #data > MAXB then
    return redis.error_reply('ERR roomcast: data missing or over max_publish')
  end
  local k = P .. '{' .. room .. '}'
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local ts = string.format('%d', now_us)
  local cur, epoch, by = latest(k)
  local me = lineage()
  if not cur then cur, epoch = upgrade(k) end
  if cur and by and by ~= me then
    -- The room's last write was another master's (a failover, or a slot
    -- that moved): a new epoch, above any seq the old master may have
    -- handed out after its last replicated write, so no seq is reused.
    cur = math.max(now_us - 1700000000000000, cur + 1000000)
    epoch = string.format('%d', cur)
  end
  if not cur then
    epoch = string.format('%d', now_us - 1700000000000000)
    cur = tonumber(epoch)
  end
  if cur >= MAXSEQ or cur < 0 then
    return redis.error_reply('ERR roomcast: room seq at its bound 2^53-1')
  end
  local s = string.format('%d', cur + 1)
  -- An explicit id: XADD itself refuses one not above the last.
  redis.call('XADD', k, 'MAXLEN', math.max(HSIZE, 1), s .. '-0',
             't', ts, 'e', epoch, 'd', data, 'r', me)
  redis.call('PEXPIRE', k, TTL)
  redis.call(PUB, k, 'd|' .. s .. '|' .. ts .. '|' ..
             mac(room, s, ts, data) .. '|' .. data)
  return cur + 1
end

-- An older library's room not published since: read as it was.
local function old_history(k, since)
  local meta, hist = k .. ':meta', k .. ':hist'
  local out = { redis.call('HGET', meta, 'seq') or '0',
                redis.call('HGET', meta, 'epoch') or '0' }
  if since < 0 then return out end
  for _, e in ipairs(redis.call('LRANGE', hist, 0, -1)) do
    local p = string.find(e, '|', 1, true)
    if p and (tonumber(string.sub(e, 1, p - 1)) or 0) > since then
      out[#out + 1] = e
    end
  end
  return out
end

-- FCALL roomcast_history 1 <P{room} | room> <since>:
-- [latest, epoch, entries 'seq|t_us|data' with seq > since, oldest
-- first...]; since < 0: latest and epoch only. Flagged no-writes.
local function history(keys, args)
  local k = P .. '{' .. room_of(keys[1]) .. '}'
  local since = tonumber(args[1]) or -1
  local last = redis.call('XREVRANGE', k, '+', '-', 'COUNT', 1)
  if not last[1] then return old_history(k, since) end
  local out = { string.match(last[1][1], '^(%d+)-') or '0',
                last[1][2][4] or '0' }
  if since < 0 or HSIZE == 0 then return out end
  local from = '-'
  if since > 0 then from = '(' .. string.format('%d', since) .. '-0' end
  local entries = redis.call('XRANGE', k, from, '+', 'COUNT', HSIZE)
  for i = 1, #entries do
    local e = entries[i]
    local f = e[2]
    out[#out + 1] = string.match(e[1], '^(%d+)-') .. '|' .. f[2] .. '|' .. f[6]
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
