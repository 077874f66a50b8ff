-- ARGV: prefix, task_id, max_attempts, ttl_s, entry_id, then the step ids of the entry.
-- Decides, per step of a delivered entry, whether this delivery runs it, and claims it if so.
-- Returns {user_input, tokens_spent, sid, attempt, instruction, inputs_json, ...} for the steps
-- to run (tokens_spent: the task's tokens so far, for the agents' budget).
-- Only the entry that carries a step (``<sid>|entry``, set by enqueue) may run it: a duplicate
-- or stale entry is skipped. A delivery of the carrier while the step is already running is a
-- redelivery (its holder went silent): it takes the next attempt, which fences the old holder
-- out, and counts against max_attempts, so a step that kills every worker is dead-lettered.
local task_id, max_attempts, ttl, entry = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local tk = k_task(task_id)
local task = redis.call('HMGET', tk, 'state', 'user_input', 'tokens_in', 'tokens_out')
if task[1] ~= 'running' then return {} end
local ts = now_ms()
local out = {task[2], (tonumber(task[3]) or 0) + (tonumber(task[4]) or 0)}
local w = {}
local FIELDS = {'state', 'attempt', 'agent', 'entry', 'deps', 'instr', 'queued_ms',
                'queue_wait_ms', 'runs', 'max_attempt'}
for i = 6, #ARGV do
  local sid = ARGV[i]
  local s = smget(tk, sid, FIELDS)
  local attempt = tonumber(s.attempt)
  local run = false
  if s.entry ~= entry then
    run = false
  elseif s.state == 'queued' then
    run = true
  elseif s.state == 'running' then
    attempt = attempt + 1
    if attempt > (tonumber(s.max_attempt) or max_attempts) then
      local err = 'lost its worker on every attempt'
      put(w, sid .. '|state', 'failed')
      put(w, sid .. '|error', err)
      put(w, sid .. '|finished_ms', ts)
      put(w, 'error', 'step ' .. sid .. ' failed: ' .. err)
      flush(tk, w)
      redis.call('XADD', K_DLQ, '*', 'task_id', task_id, 'step_id', sid, 'agent', s.agent,
                 'attempt', attempt - 1, 'error', err)
      emit(task_id, {type = 'step_failed', step_id = sid, agent = s.agent, attempt = attempt - 1,
                     error = err}, ts)
      close_task(task_id, tk, 'failed', ts, ttl, {type = 'task_failed', step_id = sid,
                 error = 'step ' .. sid .. ' failed: ' .. err})
      return {}
    end
    emit(task_id, {type = 'step_retrying', step_id = sid, agent = s.agent, attempt = attempt,
                   delay_ms = 0, error = 'redelivered: the previous holder stopped renewing its lease'}, ts)
    run = true
  end
  if run then
    local queued = tonumber(s.queued_ms) or ts
    put(w, sid .. '|state', 'running')
    put(w, sid .. '|attempt', str(attempt))
    put(w, sid .. '|started_ms', str(ts))
    put(w, sid .. '|queued_ms', str(ts))
    local waited = (tonumber(s.queue_wait_ms) or 0) + math.max(0, ts - queued)
    put(w, sid .. '|queue_wait_ms', str(waited))
    put(w, sid .. '|runs', str((tonumber(s.runs) or 0) + 1))
    emit(task_id, {type = 'step_started', step_id = sid, agent = s.agent, attempt = attempt}, ts)
    local deps = split(s.deps)
    local parts = {}
    if #deps > 0 then
      local names = {}
      for j, dep in ipairs(deps) do names[j] = dep .. '|result' end
      local results = redis.call('HMGET', tk, unpack(names))
      for j, dep in ipairs(deps) do
        if results[j] then parts[#parts + 1] = cjson.encode(dep) .. ':' .. results[j] end
      end
    end
    out[#out + 1] = sid
    out[#out + 1] = attempt
    out[#out + 1] = s.instr
    out[#out + 1] = '{' .. table.concat(parts, ',') .. '}'
  end
end
flush(tk, w)
return out
