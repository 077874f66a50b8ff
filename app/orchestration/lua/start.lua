-- ARGV: prefix, task_id, max_attempts, ttl_s, then "sid:attempt" for each step of the entry.
-- Decides, per step of a delivered entry, whether this delivery runs it, and claims it if so.
-- Returns {user_input, sid, attempt, instruction, inputs_json, ...} for the steps to run.
-- A delivery of a step that is already running with the same attempt is a redelivery (its
-- holder died or the entry came twice): it takes a new attempt, which fences the old holder.
local task_id, max_attempts, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local tk = k_task(task_id)
local out = {}
if redis.call('HGET', tk, 'state') ~= 'running' then return out end
local ts = now_ms()
out[1] = redis.call('HGET', tk, 'user_input')
for i = 5, #ARGV do
  local sid, a = string.match(ARGV[i], '^(.+):(%d+)$')
  local want = tonumber(a)
  local state = sget(tk, sid, 'state')
  local attempt = tonumber(sget(tk, sid, 'attempt'))
  local agent = sget(tk, sid, 'agent')
  local run = false
  if attempt == want and state == 'queued' then
    run = true
  elseif attempt == want and state == 'running' then
    attempt = attempt + 1
    emit(task_id, {type = 'step_retrying', step_id = sid, agent = agent, attempt = attempt,
                   delay_ms = 0, error = 'redelivered: the previous holder stopped renewing its lease'}, ts)
    if attempt > max_attempts then
      redis.call('HSET', tk, sid .. '|state', 'failed', sid .. '|attempt', attempt - 1,
                 sid .. '|error', 'lost its worker on every attempt', sid .. '|finished_ms', ts)
      redis.call('XADD', K_DLQ, '*', 'task_id', task_id, 'step_id', sid, 'agent', agent,
                 'attempt', attempt - 1, 'error', 'lost its worker on every attempt')
      emit(task_id, {type = 'step_failed', step_id = sid, agent = agent, attempt = attempt - 1,
                     error = 'lost its worker on every attempt'}, ts)
      close_task(task_id, tk, 'failed', ts, ttl, {type = 'task_failed', step_id = sid,
                 error = 'step ' .. sid .. ' failed: lost its worker on every attempt'})
      return {out[1]}
    end
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
