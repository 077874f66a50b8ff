-- ARGV: prefix, limit
-- Moves retries whose backoff has elapsed from the delayed set back to their agent stream.
-- Returns {moved, ms until the next one is due or -1}.
local limit = tonumber(ARGV[2])
local ts = now_ms()
local due = redis.call('ZRANGE', K_DELAYED, '-inf', ts, 'BYSCORE', 'LIMIT', 0, limit)
local moved = 0
for _, member in ipairs(due) do
  redis.call('ZREM', K_DELAYED, member)
  local task_id, sid, a = string.match(member, '^([^|]+)|(.+):(%d+)$')
  local tk = k_task(task_id)
  if sget(tk, sid, 'state') == 'retrying' and sget(tk, sid, 'attempt') == a
      and redis.call('HGET', tk, 'state') == 'running' then
    local w = {}
    enqueue(task_id, tk, {sid}, ts, w, nil, nil, true)
    flush(tk, w)
    moved = moved + 1
  end
end
local nxt = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if #nxt == 0 then return {moved, -1} end
return {moved, math.max(0, tonumber(nxt[2]) - ts)}
