-- ARGV: prefix, task_id, sid, attempt, error, permanent (0/1), delay_ms, max_attempts, ttl_s,
--       ack_entry (the agent-stream entry to XACK with the outcome, or '')
-- A step attempt failed. Fenced like complete.lua. Either schedules the next attempt in the
-- delayed set (it survives worker restarts; promote.lua moves it back to the agent stream), or
-- fails the step for good: dead-letter entry, step_failed, task_failed.
-- Returns 0 fenced out, 1 retry scheduled, 2 dead-lettered.
local task_id, sid, attempt, err = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local permanent, delay_ms = ARGV[6] == '1', tonumber(ARGV[7])
local max_attempts, ttl = tonumber(ARGV[8]), tonumber(ARGV[9])
local tk = k_task(task_id)
if sget(tk, sid, 'state') ~= 'running' or tonumber(sget(tk, sid, 'attempt')) ~= attempt then
  return 0
end
local ts = now_ms()
local agent = sget(tk, sid, 'agent')
if ARGV[10] and ARGV[10] ~= '' then redis.call('XACK', k_agent(agent), agent, ARGV[10]) end
redis.call('HSET', tk, sid .. '|error', err, sid .. '|finished_ms', ts)
-- A redriven step has its own ceiling (redrive.lua gives it a fresh set of attempts).
max_attempts = tonumber(sget(tk, sid, 'max_attempt')) or max_attempts
if not permanent and attempt < max_attempts and redis.call('HGET', tk, 'state') == 'running' then
  redis.call('HSET', tk, sid .. '|state', 'retrying', sid .. '|attempt', attempt + 1)
  redis.call('ZADD', K_DELAYED, ts + delay_ms, task_id .. '|' .. sid .. ':' .. (attempt + 1))
  emit(task_id, {type = 'step_retrying', step_id = sid, agent = agent, attempt = attempt + 1,
                 delay_ms = delay_ms, error = err}, ts)
  return 1
end
redis.call('HSET', tk, sid .. '|state', 'failed')
redis.call('XADD', K_DLQ, '*', 'task_id', task_id, 'step_id', sid, 'agent', agent,
           'attempt', attempt, 'error', err)
emit(task_id, {type = 'step_failed', step_id = sid, agent = agent, attempt = attempt, error = err}, ts)
if redis.call('HGET', tk, 'state') == 'running' then
  redis.call('HSET', tk, 'error', 'step ' .. sid .. ' failed: ' .. err)
  close_task(task_id, tk, 'failed', ts, ttl,
             {type = 'task_failed', step_id = sid, error = 'step ' .. sid .. ' failed: ' .. err})
end
return 2
