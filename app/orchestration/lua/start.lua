-- ARGV: prefix, task_id, max_attempts, ttl_s, entry_id, then the step ids of the entry.
-- Decides, per step of a delivered entry, whether this delivery runs it, and claims it if so.
-- Returns {user_input, sid, attempt, instruction, inputs_json, ...} for the steps to run.
-- Only the entry that carries a step (``<sid>|entry``, set by enqueue) may run it: a duplicate
-- or stale entry is skipped. A delivery of the carrier while the step is already running is a
-- redelivery (its holder went silent): it takes the next attempt, which fences the old holder
-- out, and counts against max_attempts, so a step that kills every worker is dead-lettered.
local task_id, max_attempts, ttl, entry = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local tk = k_task(task_id)
local out = {}
if redis.call('HGET', tk, 'state') ~= 'running' then return out end
local ts = now_ms()
out[1] = redis.call('HGET', tk, 'user_input')
for i = 6, #ARGV do
  local sid = ARGV[i]
  local state = sget(tk, sid, 'state')
  local attempt = tonumber(sget(tk, sid, 'attempt'))
  local agent = sget(tk, sid, 'agent')
  local run = false
  if sget(tk, sid, 'entry') ~= entry then
    run = false
  elseif state == 'queued' then
    run = true
  elseif state == 'running' then
    attempt = attempt + 1
    if attempt > (tonumber(sget(tk, sid, 'max_attempt')) or max_attempts) then
      local err = 'lost its worker on every attempt'
      redis.call('HSET', tk, sid .. '|state', 'failed', sid .. '|attempt', attempt - 1,
                 sid .. '|error', err, sid .. '|finished_ms', ts)
      redis.call('XADD', K_DLQ, '*', 'task_id', task_id, 'step_id', sid, 'agent', agent,
                 'attempt', attempt - 1, 'error', err)
      emit(task_id, {type = 'step_failed', step_id = sid, agent = agent, attempt = attempt - 1,
                     error = err}, ts)
      redis.call('HSET', tk, 'error', 'step ' .. sid .. ' failed: ' .. err)
      close_task(task_id, tk, 'failed', ts, ttl, {type = 'task_failed', step_id = sid,
                 error = 'step ' .. sid .. ' failed: ' .. err})
      return {out[1]}
    end
    emit(task_id, {type = 'step_retrying', step_id = sid, agent = agent, attempt = attempt,
                   delay_ms = 0, error = 'redelivered: the previous holder stopped renewing its lease'}, ts)
    run = true
  end
  if run then
    local queued = tonumber(sget(tk, sid, 'queued_ms')) or ts
    redis.call('HSET', tk, sid .. '|state', 'running', sid .. '|attempt', attempt,
               sid .. '|started_ms', ts)
    redis.call('HINCRBY', tk, sid .. '|queue_wait_ms', math.max(0, ts - queued))
    redis.call('HINCRBY', tk, sid .. '|runs', 1)
    redis.call('HSET', tk, sid .. '|queued_ms', ts)
    emit(task_id, {type = 'step_started', step_id = sid, agent = agent, attempt = attempt}, ts)
    local parts = {}
    for _, dep in ipairs(split(sget(tk, sid, 'deps'), ',')) do
      local r = redis.call('HGET', k_results(task_id), dep)
      if r then parts[#parts + 1] = cjson.encode(dep) .. ':' .. r end
    end
    out[#out + 1] = sid
    out[#out + 1] = attempt
    out[#out + 1] = sget(tk, sid, 'instr')
    out[#out + 1] = '{' .. table.concat(parts, ',') .. '}'
  end
end
return out
