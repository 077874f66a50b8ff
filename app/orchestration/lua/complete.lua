-- ARGV: prefix, ttl_s, max_tokens, max_cost (the task's budget; 0 = none), consumer and
-- slots (the hand-off: see the end), then records of 16 values each, recorded in order:
--   kind: 'c' (complete a claimed step: fenced on its attempt), 'f' (start and complete a
--         step that ran before it was claimed: fenced on its carrier entry and attempt),
--         'a' (ACK only),
--   agent (whose stream delivered it), task_id, sid, attempt, entry (the carrier, 'f' only),
--   result_json, text, run_ms, cost, tokens_in, tokens_out,
--   ack_entry: the agent-stream entry to XACK once the record is settled, or '',
--   step_started ('f' only) and step_completed: the events' JSON up to ``"ts":`` (Outcome.args),
--   dependents: the step's dependents as its entry named them ("a,b", '' for none), or '?'
--         when the worker does not know them; a hint for the read, checked against the hash.
-- A worker sends every outcome that finished while its previous call was in flight in one call
-- (group commit): the server pays one script call for the batch, not one per step.
-- Each record: store the result and queue the steps it made ready, atomically; step_completed
-- names them (``queued``). A task whose totals pass its budget with work left is stopped
-- cleanly: task_failed.
-- Returns {codes, handed}. One code per record: 0 fenced out (another attempt owns the step: no
-- ACK), 1 recorded, 2 recorded and the task completed, 3 recorded and the task stopped on its
-- budget, 4 the task is no longer running (nothing to run, or the step was cancelled under a
-- claimed attempt), 5 the entry no longer carries the step.
-- ``handed``: entries delivered to the caller, {{agent, entries as XREADGROUP returns them}}.
local RECORD = 16
local ttl, max_tokens, max_cost = tonumber(ARGV[2]), tonumber(ARGV[3]) or 0, tonumber(ARGV[4]) or 0
local ts = now_ms()
local acks, ack_order = {}, {}

local function ack_later(agent, entry)
  if entry == nil or entry == '' then return end
  if acks[agent] == nil then acks[agent] = {}; ack_order[#ack_order + 1] = agent end
  table.insert(acks[agent], entry)
end

-- Field names, built once per step id and call (a batch holds the same step of many tasks):
-- ``read`` lists what is read, and each field's name is under the field.
local STEP_READ = {'state', 'attempt', 'sink', 'dependents', 'error', 'entry', 'queued_ms',
                   'queue_wait_ms', 'runs'}
local STEP_WRITE = {'started_ms', 'result', 'finished_ms', 'run_ms', 'cost', 'tin', 'tout', 'text'}
-- A dependent's fields: its counter, and what it needs to be queued.
local DEPENDENT_READ = {'deps_left', 'agent', 'attempt', 'instr', 'deps', 'dependents'}
local TASK_READ = {'state', 'n_done', 'n_steps', 'cost_units', 'tokens_in', 'tokens_out',
                   'created_ms', 'sinks'}
local STEP_NAMES, DEPENDENT_NAMES = {}, {}

local function names_of(cache, read, write, sid)
  local names = cache[sid]
  if names == nil then
    names = {read = {}}
    for i, f in ipairs(read) do
      names[f] = sid .. '|' .. f
      names.read[i] = names[f]
    end
    for _, f in ipairs(write) do names[f] = sid .. '|' .. f end
    cache[sid] = names
  end
  return names
end
local function step_names(sid) return names_of(STEP_NAMES, STEP_READ, STEP_WRITE, sid) end
local function dependent_names(sid) return names_of(DEPENDENT_NAMES, DEPENDENT_READ, {'result'}, sid) end

-- What this call knows of each task's hash: the fields its records need, read in one HMGET
-- at the task's first record (the two parallel steps of a task usually land in one call, and
-- their dependent is read with them), then kept current by the call's own writes, which wait in
-- ``w`` and go out as one HSET per task. Every field of a task that this script writes and may
-- read again is set in its view too (``vput``; record sets the step's own in place), so what
-- the view lacks has not been written here and is read as it is.
local NEED, VIEWS, VIEW_ORDER = {}, {}, {}
local USER_INPUT = {'user_input'}

local function need(task_id, names)
  local n = NEED[task_id]
  if n == nil then
    n = {names = {unpack(TASK_READ)}, seen = {}}
    NEED[task_id] = n
  end
  if not n.seen[names] then  -- each list of names is one table per step id and call
    n.seen[names] = true
    local list, k = n.names, #n.names
    for j, name in ipairs(names) do list[k + j] = name end
  end
end

local function view_of(task_id)
  local v = VIEWS[task_id]
  if v == nil then
    local tk, names = k_task(task_id), NEED[task_id].names
    local values = redis.call('HMGET', tk, unpack(names))
    local f = {}
    for i, name in ipairs(names) do f[name] = values[i] end
    v = {tk = tk, f = f, w = {}}
    VIEWS[task_id] = v
    VIEW_ORDER[#VIEW_ORDER + 1] = v
  end
  return v
end

-- The fields among ``names`` that the view lacks, in one HMGET.
local function fetch(v, names)
  local missing = {}
  for _, name in ipairs(names) do
    if v.f[name] == nil then missing[#missing + 1] = name end
  end
  if #missing == 0 then return end
  local values = redis.call('HMGET', v.tk, unpack(missing))
  for i, name in ipairs(missing) do v.f[name] = values[i] end
end

-- A write to a task: into its view, and into the pending writes of its one HSET.
local function vput(v, field, value)
  v.f[field] = value
  local w = v.w
  w[#w + 1] = field
  w[#w + 1] = value
end

local function flush_view(v)
  if #v.w > 0 then
    redis.call('HSET', v.tk, unpack(v.w))
    v.w = {}
  end
end

-- ``,"queued":[...]`` for step_completed: the steps this completion queued ('' for none).
-- No escaping needed: step ids are [A-Za-z0-9_-] (models.StepId), agents are plain names.
local function queued_json(queued)
  if #queued == 0 then return '' end
  local items = {}
  for j, q in ipairs(queued) do
    items[j] = '{"step_id":"' .. q.sid .. '","agent":"' .. q.agent .. '","attempt":'
      .. q.attempt .. '}'
  end
  return ',"queued":[' .. table.concat(items, ',') .. ']'
end

-- Count the completion of ``sid`` down in its dependents and queue the ones it made ready.
-- Returns the queued steps (enqueue's list).
local function release(task_id, v, sid, result, spent)
  local f = v.f
  local deps = split(f[step_names(sid).dependents], ',')
  if #deps == 0 then return {} end
  local steps = {}
  for _, dep in ipairs(deps) do
    local d = dependent_names(dep)
    fetch(v, d.read)  -- nothing to read when the record named its dependents
    local left = tonumber(f[d.deps_left]) - 1
    vput(v, d.deps_left, left)
    if left == 0 then
      steps[#steps + 1] = {sid = dep, agent = f[d.agent], attempt = f[d.attempt], instr = f[d.instr],
                           deps = split(f[d.deps], ','), dependents = f[d.dependents]}
    end
  end
  if #steps == 0 then return {} end
  -- What the ready steps need: the input and their dependencies' results (those this call
  -- wrote are in the view already).
  local results, ready, names = {[sid] = result}, {}, {'user_input'}
  for _, step in ipairs(steps) do
    for _, dep in ipairs(step.deps) do
      if dep ~= sid then names[#names + 1] = dependent_names(dep).result end
    end
  end
  fetch(v, names)
  for j, step in ipairs(steps) do
    ready[j] = step.sid
    for _, dep in ipairs(step.deps) do
      if dep ~= sid then results[dep] = f[dependent_names(dep).result] end
    end
  end
  local w = v.w
  local mark = #w
  local queued = enqueue(task_id, v.tk, ready, ts, w, spent,
                         {user_input = f['user_input'], steps = steps, results = results})
  for j = mark + 1, #w, 2 do f[w[j]] = w[j + 1] end
  return queued
end

-- The task is complete: its output is the text of its sink steps, in plan order.
local function finish(task_id, v, sid, text, cost, tin, tout)
  local f = v.f
  local sinks, others = split(f['sinks'], ','), {}
  for _, other in ipairs(sinks) do
    if other ~= sid then others[#others + 1] = step_names(other).text end
  end
  fetch(v, others)
  local texts = {}
  for _, other in ipairs(sinks) do
    texts[#texts + 1] = (other == sid) and text or (f[step_names(other).text] or '')
  end
  local output = table.concat(texts, '\n\n')
  local latency = ts - tonumber(f['created_ms'])
  vput(v, 'state', 'completed')
  vput(v, 'finished_ms', ts)
  vput(v, 'latency_ms', latency)
  vput(v, 'output', output)
  flush_view(v)
  emit(task_id, {type = 'task_completed', latency_ms = latency, cost_units = cost,
                 tokens_in = tin, tokens_out = tout, output = output}, ts)
  expire_task(task_id, ttl)
end

local function record(i, v)
  local kind, task_id, sid, attempt_in, carrier = ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
                                                  ARGV[i + 5]
  local result, text = ARGV[i + 6], ARGV[i + 7]
  local run_ms, cost = tonumber(ARGV[i + 8]), tonumber(ARGV[i + 9])
  local tin, tout = tonumber(ARGV[i + 10]), tonumber(ARGV[i + 11])
  local f, s = v.f, step_names(sid)
  local state, attempt, entry, t_state = f[s.state], f[s.attempt], f[s.entry], f['state']
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
    local queued = tonumber(f[s.queued_ms]) or ts
    local started = math.max(ts - run_ms, queued)
    local w = v.w
    local n = #w
    w[n + 1], w[n + 2] = s.started_ms, started
    w[n + 3], w[n + 4] = s.queued_ms, started
    w[n + 5], w[n + 6] = s.queue_wait_ms,
                         (tonumber(f[s.queue_wait_ms]) or 0) + math.max(0, started - queued)
    w[n + 7], w[n + 8] = s.runs, (tonumber(f[s.runs]) or 0) + 1
    emit_head(task_id, 'step_started', ARGV[i + 13], started)
  end
  local done = tonumber(f['n_done']) + 1
  cost, tin, tout = tonumber(f['cost_units']) + cost, tonumber(f['tokens_in']) + tin,
                    tonumber(f['tokens_out']) + tout
  if f[s.error] then
    redis.call('HDEL', v.tk, s.error)
    f[s.error] = false
  end
  -- Written straight into the pending HSET; the view keeps what a later record of the call
  -- may read (the step's state and result, the task's totals).
  local w = v.w
  local n = #w
  w[n + 1], w[n + 2] = s.result, result
  w[n + 3], w[n + 4] = s.state, 'completed'
  w[n + 5], w[n + 6] = s.finished_ms, ts
  w[n + 7], w[n + 8] = s.run_ms, run_ms
  w[n + 9], w[n + 10] = s.cost, ARGV[i + 9]
  w[n + 11], w[n + 12] = s.tin, ARGV[i + 10]
  w[n + 13], w[n + 14] = s.tout, ARGV[i + 11]
  w[n + 15], w[n + 16] = 'n_done', done
  w[n + 17], w[n + 18] = 'cost_units', cost
  w[n + 19], w[n + 20] = 'tokens_in', tin
  w[n + 21], w[n + 22] = 'tokens_out', tout
  if f[s.sink] == '1' then  -- a later sink's completion in this call reads it (finish)
    w[n + 23], w[n + 24] = s.text, text
    f[s.text] = text
  end
  f[s.result], f[s.state], f['n_done'] = result, 'completed', done
  f['cost_units'], f['tokens_in'], f['tokens_out'] = cost, tin, tout
  local completed = ARGV[i + 14]
  local over = nil
  if max_tokens > 0 and tin + tout >= max_tokens then
    over = 'token budget exhausted: ' .. (tin + tout) .. ' of ' .. max_tokens .. ' tokens'
  elseif max_cost > 0 and cost >= max_cost then
    over = 'cost budget exhausted: ' .. cost .. ' of ' .. max_cost .. ' cost units'
  end
  if t_state ~= 'running' or (over and done < tonumber(f['n_steps'])) then
    emit_head(task_id, 'step_completed', completed, ts)
    if t_state ~= 'running' then return 1 end
    vput(v, 'error', over)
    flush_view(v)
    close_task(task_id, v.tk, 'failed', ts, ttl, {type = 'task_failed', step_id = sid,
               error = over, budget = true})
    VIEWS[task_id] = nil  -- close_task wrote past the view: a later record reads afresh
    return 3
  end
  local queued = release(task_id, v, sid, result, tin + tout)
  emit_head(task_id, 'step_completed', completed, ts .. queued_json(queued))
  if done < tonumber(f['n_steps']) then return 1 end
  finish(task_id, v, sid, text, cost, tin, tout)
  return 2
end

local consumer, slots = ARGV[5], ARGV[6]

-- Plan each task's read: its records' steps, and the dependents they name.
for i = 7, #ARGV, RECORD do
  if ARGV[i] ~= 'a' then
    local task_id, sid, hint = ARGV[i + 2], ARGV[i + 3], ARGV[i + 15]
    need(task_id, step_names(sid).read)
    if hint ~= '?' and hint ~= '' then
      need(task_id, USER_INPUT)
      for _, dep in ipairs(split(hint, ',')) do need(task_id, dependent_names(dep).read) end
    end
  end
end

-- A record that fails midway (a script error) must not take the writes of those before it
-- along, nor leave half of its own: its pending writes are dropped, those before it flushed,
-- the error returned and nothing ACKed, so every record of the call is delivered again and the
-- fences make the ones already recorded no-ops.
local codes = {}
for i = 7, #ARGV, RECORD do
  local kind, agent, ack = ARGV[i], ARGV[i + 1], ARGV[i + 12]
  local code = 1
  if kind ~= 'a' then
    local v = view_of(ARGV[i + 2])
    local mark = #v.w
    local ok, err = pcall(record, i, v)
    if not ok then
      for j = #v.w, mark + 1, -1 do v.w[j] = nil end
      for _, other in ipairs(VIEW_ORDER) do flush_view(other) end
      error(err, 0)
    end
    code = err
  end
  -- The ACK comes after the record, in the same atomic unit; never for a fenced-out one.
  if code ~= 0 then ack_later(agent, ack) end
  codes[#codes + 1] = code
end
for _, v in ipairs(VIEW_ORDER) do flush_view(v) end
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
