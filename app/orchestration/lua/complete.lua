-- ARGV: prefix, ttl_s, max_tokens, max_cost (the task's budget; 0 = none), consumer and
-- slots (the hand-off: see the end), then records of 15 values each, recorded in order:
--   kind: 'c' (complete a claimed step: fenced on its attempt), 'f' (start and complete a
--         step that ran before it was claimed: fenced on its carrier entry and attempt),
--         'a' (ACK only),
--   agent (whose stream delivered it), task_id, sid, attempt, entry (the carrier, 'f' only),
--   result_json, text, run_ms, cost, tokens_in, tokens_out,
--   ack_entry: the agent-stream entry to XACK once the record is settled, or '',
--   step_started ('f' only) and step_completed: the events' JSON up to ``"ts":`` (Outcome.args)
-- A worker sends every outcome that finished while its previous call was in flight in one call
-- (group commit): the server pays one script call for the batch, not one per step.
-- Each record: store the result and queue the steps it made ready, atomically. A task whose
-- totals pass its budget with work left is stopped cleanly: task_failed.
-- Returns {codes, handed}. One code per record: 0 fenced out (another attempt owns the step: no
-- ACK), 1 recorded, 2 recorded and the task completed, 3 recorded and the task stopped on its
-- budget, 4 the task is no longer running (nothing to run, or the step was cancelled under a
-- claimed attempt), 5 the entry no longer carries the step.
-- ``handed``: entries delivered to the caller, {{agent, entries as XREADGROUP returns them}}.
local ttl, max_tokens, max_cost = tonumber(ARGV[2]), tonumber(ARGV[3]) or 0, tonumber(ARGV[4]) or 0
local ts = now_ms()
local acks, ack_order = {}, {}

local function ack_later(agent, entry)
  if entry == nil or entry == '' then return end
  if acks[agent] == nil then acks[agent] = {}; ack_order[#ack_order + 1] = agent end
  table.insert(acks[agent], entry)
end

-- What a record reads: its step's fields, then the task's, in one HMGET. The names are built
-- once per step id and call (a batch holds the same step of many tasks).
local STEP_FIELDS = {'state', 'attempt', 'sink', 'dependents', 'error', 'entry', 'queued_ms',
                     'queue_wait_ms', 'runs'}
local TASK_FIELDS = {'state', 'n_done', 'n_steps', 'cost_units', 'tokens_in', 'tokens_out',
                     'created_ms', 'sinks'}
local NAMES = {}

local function record_names(sid)
  local names = NAMES[sid]
  if names == nil then
    names = {}
    for i, f in ipairs(STEP_FIELDS) do names[i] = sid .. '|' .. f end
    for _, f in ipairs(TASK_FIELDS) do names[#names + 1] = f end
    NAMES[sid] = names
  end
  return names
end

-- A dependent's fields that a record reads (its counter, and what it needs to be queued).
local DEPENDENT_FIELDS = {'deps_left', 'agent', 'attempt', 'instr', 'deps'}

-- Results this call wrote, per task: a step readied by two that finished in the same batch
-- (two parallel steps of one entry) is queued without reading the first one's result back.
local RESULTS = {}

local function record(i)
  local kind, task_id, sid, attempt_in, carrier = ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
                                                  ARGV[i + 5]
  local result, text = ARGV[i + 6], ARGV[i + 7]
  local run_ms, cost = tonumber(ARGV[i + 8]), tonumber(ARGV[i + 9])
  local tin, tout = tonumber(ARGV[i + 10]), tonumber(ARGV[i + 11])
  local tk = k_task(task_id)
  local state, attempt, sink, dependents, err, entry, queued_ms, queue_wait_ms, runs,
        t_state, n_done, n_steps, cost_units, tokens_in, tokens_out, created_ms, sinks =
    unpack(redis.call('HMGET', tk, unpack(record_names(sid))))
  local w = {}
  if kind == 'c' then
    -- Ended under it (cancel, a failed sibling, an expired hash): settled, nothing to record.
    if state == 'cancelled' or not t_state then return 4 end
    if state ~= 'running' or attempt ~= attempt_in then return 0 end
  else
    -- Unclaimed: this delivery of the carrier entry ran it without a start.lua call. It may
    -- record only what start.lua would have let it run: a queued step of a running task.
    if t_state ~= 'running' then return 4 end
    if entry ~= carrier then return 5 end
    if state == 'running' then return 0 end
    if state ~= 'queued' or attempt ~= attempt_in then return 5 end
    local queued = tonumber(queued_ms) or ts
    local started = math.max(ts - run_ms, queued)
    put(w, sid .. '|started_ms', started)
    put(w, sid .. '|queued_ms', started)
    put(w, sid .. '|queue_wait_ms', (tonumber(queue_wait_ms) or 0) + math.max(0, started - queued))
    put(w, sid .. '|runs', (tonumber(runs) or 0) + 1)
    emit_head(task_id, 'step_started', ARGV[i + 13], started)
  end
  local done = tonumber(n_done) + 1
  local total_cost = tonumber(cost_units) + cost
  local total_in, total_out = tonumber(tokens_in) + tin, tonumber(tokens_out) + tout
  put(w, sid .. '|result', result)
  local written = RESULTS[task_id] or {}
  RESULTS[task_id], written[sid] = written, result
  if err then redis.call('HDEL', tk, sid .. '|error') end
  put(w, sid .. '|state', 'completed')
  put(w, sid .. '|finished_ms', ts)
  put(w, sid .. '|run_ms', run_ms)
  put(w, sid .. '|cost', cost)
  put(w, sid .. '|tin', tin)
  put(w, sid .. '|tout', tout)
  put(w, 'n_done', done)
  put(w, 'cost_units', total_cost)
  put(w, 'tokens_in', total_in)
  put(w, 'tokens_out', total_out)
  if sink == '1' then put(w, sid .. '|text', text) end
  emit_head(task_id, 'step_completed', ARGV[i + 14], ts)
  if t_state ~= 'running' then
    flush(tk, w)
    return 1
  end
  local over = nil
  if max_tokens > 0 and total_in + total_out >= max_tokens then
    over = 'token budget exhausted: ' .. (total_in + total_out) .. ' of ' .. max_tokens .. ' tokens'
  elseif max_cost > 0 and total_cost >= max_cost then
    over = 'cost budget exhausted: ' .. total_cost .. ' of ' .. max_cost .. ' cost units'
  end
  if over and done < tonumber(n_steps) then
    put(w, 'error', over)
    flush(tk, w)
    close_task(task_id, tk, 'failed', ts, ttl, {type = 'task_failed', step_id = sid, error = over,
               budget = true})
    return 3
  end
  local deps = split(dependents, ',')
  if #deps > 0 then
    -- One read for the dependents' counters and what a ready one needs to be queued.
    local names = {'user_input'}
    for _, dep in ipairs(deps) do
      for _, f in ipairs(DEPENDENT_FIELDS) do names[#names + 1] = dep .. '|' .. f end
    end
    local d = redis.call('HMGET', tk, unpack(names))
    local known = {user_input = d[1], steps = {}, results = written}
    local ready = {}
    for i, dep in ipairs(deps) do
      local b = 1 + 5 * (i - 1)
      local n = tonumber(d[b + 1]) - 1
      put(w, dep .. '|deps_left', n)
      if n == 0 then
        ready[#ready + 1] = dep
        known.steps[#known.steps + 1] = {sid = dep, agent = d[b + 2], attempt = d[b + 3],
                                         instr = d[b + 4], deps = split(d[b + 5], ',')}
      end
    end
    enqueue(task_id, tk, ready, ts, w, total_in + total_out, known)
  end
  if done < tonumber(n_steps) then
    flush(tk, w)
    return 1
  end
  -- The task is complete: its output is the text of its sink steps, in plan order.
  local texts = {}
  for _, other in ipairs(split(sinks, ',')) do
    texts[#texts + 1] = (other == sid) and text or (sget(tk, other, 'text') or '')
  end
  local output = table.concat(texts, '\n\n')
  local latency = ts - tonumber(created_ms)
  put(w, 'state', 'completed')
  put(w, 'finished_ms', ts)
  put(w, 'latency_ms', latency)
  put(w, 'output', output)
  flush(tk, w)
  emit(task_id, {type = 'task_completed', latency_ms = latency, cost_units = total_cost,
                 tokens_in = total_in, tokens_out = total_out, output = output}, ts)
  expire_task(task_id, ttl)
  return 2
end

local consumer, slots = ARGV[5], ARGV[6]
local codes = {}
for i = 7, #ARGV, 15 do
  local kind, agent, ack = ARGV[i], ARGV[i + 1], ARGV[i + 12]
  local code = 1
  if kind ~= 'a' then code = record(i) end
  -- The ACK comes after the record, in the same atomic unit; never for a fenced-out one.
  if code ~= 0 then ack_later(agent, ack) end
  codes[#codes + 1] = code
end
for _, agent in ipairs(ack_order) do
  redis.call('XACK', k_agent(agent), agent, unpack(acks[agent]))
end
-- Hand-off: the caller hosts these agents and has this many free slots ("agent=n,..."). Entries
-- this call queued for them are delivered to it here (XREADGROUP as its consumer: '>' takes the
-- oldest undelivered, ours or older), so the next step of a chain starts from this reply rather
-- than from another round trip through a blocked read. They are pending under the caller like
-- any delivery: if it dies before running them, they are reclaimed.
local handed = {}
if consumer ~= '' then
  for agent, n in string.gmatch(slots, '([^,=]+)=(%d+)') do
    local count = math.min(tonumber(n), QUEUED[agent] or 0)
    if count > 0 then
      -- pcall: a missing group (NOGROUP) must not fail a call whose records are written.
      local got = redis.pcall('XREADGROUP', 'GROUP', agent, consumer, 'COUNT', count,
                              'STREAMS', k_agent(agent), '>')
      if type(got) == 'table' and got.err == nil and got[1] then
        handed[#handed + 1] = {agent, got[1][2]}
      end
    end
  end
end
return {codes, handed}
