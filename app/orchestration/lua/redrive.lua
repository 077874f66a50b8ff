-- ARGV: prefix, dlq_entry_id, max_attempts
-- Resumes the failed task of a dead-lettered step where it stopped: the task is running again,
-- its keys no longer expire, the dead step gets a fresh set of attempts, the steps cancelled by
-- the failure go back to pending (or are queued, when their dependencies are done), and the
-- completed steps keep their results. Every re-queued step takes the next attempt, so a late
-- result of an attempt from before the failure stays fenced out.
-- Returns {1, task_id, step_id} | {-1} unknown entry | {-2, task_id, step_id} task expired |
--         {-3, task_id, step_id} the task is not failed on this step.
local max_attempts = tonumber(ARGV[3])
local found = redis.call('XRANGE', K_DLQ, ARGV[2], ARGV[2])
if #found == 0 then return {-1} end
local f = {}
local raw = found[1][2]
for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
local task_id, sid = f['task_id'], f['step_id']
if not task_id or not sid then return {-1} end
local tk = k_task(task_id)
local state = redis.call('HGET', tk, 'state')
if not state then return {-2, task_id, sid} end
if state ~= 'failed' or sget(tk, sid, 'state') ~= 'failed' then return {-3, task_id, sid} end
local ts = now_ms()
redis.call('HSET', tk, 'state', 'running')
redis.call('HDEL', tk, 'finished_ms', 'latency_ms', 'error')
redis.call('PERSIST', tk)
redis.call('PERSIST', k_events(task_id))
local ready = {}
for _, s in ipairs(split(redis.call('HGET', tk, 'steps'))) do
  local st = sget(tk, s, 'state')
  if s == sid or st == 'cancelled' then
    if tonumber(sget(tk, s, 'deps_left')) == 0 then
      local attempt = tonumber(sget(tk, s, 'attempt')) + 1
      redis.call('HSET', tk, s .. '|attempt', attempt, s .. '|max_attempt', attempt + max_attempts - 1)
      ready[#ready + 1] = s
    else
      redis.call('HSET', tk, s .. '|state', 'pending')
    end
  end
end
redis.call('HDEL', tk, sid .. '|error')
local w = {}
enqueue(task_id, tk, ready, ts, w, nil, nil, true)
flush(tk, w)
redis.call('XDEL', K_DLQ, ARGV[2])
return {1, task_id, sid}
