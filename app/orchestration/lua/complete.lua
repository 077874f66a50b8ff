-- ARGV: prefix, ttl_s, max_tokens, max_cost (the task's budget; 0 = none), consumer and
-- slots (the hand-off: see the end), then records, recorded in order. An ACK-only record is
-- three values: 'a', agent, the agent-stream entry to XACK (each value costs the server an
-- object and a Lua string, and an entry of two parallel steps is ACKed on its own once both are
-- recorded). The others are 16 values:
--   kind: 'c' (complete a claimed step: fenced on its attempt), 'f' (start and complete a
--         step that ran before it was claimed: fenced on its carrier entry and attempt),
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
-- ``handed``: entries delivered to the caller, per agent a flat list: {agent, then for each
-- entry its id, its count of field names and values, and those}.
local RECORD, ACK_RECORD = 16, 3
-- The call's own state, set at its start (below "per call"); the helpers read it.
local ttl, ttl_text, max_tokens, max_cost, ts, ts_text, acks, ack_order
-- The TTL's text, kept from call to call (it is the same in every call of a deployment).
local TTL, TTL_TEXT

local function ack_later(agent, entry)
  if entry == nil or entry == '' then return end
  if acks[agent] == nil then acks[agent] = {}; ack_order[#ack_order + 1] = agent end
  table.insert(acks[agent], entry)
end

-- What this call knows of each task's hash (its view): one HMGET at the task's first record
-- reads the task's fields, each of its records' step fields and the fields of the dependents
-- the records name (from their entry's ``d``; a hint, checked against the step's
-- ``dependents``). The two parallel steps of a task usually land in one call, and their
-- dependent is read with them. The reply is kept as it came (positions, no table of names:
-- building one cost more than the HMGETs it saved), the fields a later record of the call may
-- read are updated in it in place, and every write goes to ``w``, sent as one HSET per task.
-- The list of names and the positions in it depend only on which steps a task's records name
-- (its shape), so they are built once per shape and call: a batch holds the same step of many
-- tasks.
local TASK_READ = {'state', 'n_done', 'n_steps', 'cost_units', 'tokens_in', 'tokens_out'}
-- Positions in a task's reply: the task's fields, then each step's from its base.
local T_STATE, T_DONE, T_STEPS, T_COST, T_TIN, T_TOUT = 1, 2, 3, 4, 5, 6
-- What only the task's end needs (finish), read with the rest only when a record may end the
-- task: the last step of a task to complete is a sink, so a record whose hint names
-- dependents cannot (finish reads them itself if a hint misled). Each name read costs the
-- server ~1,600 instructions (callgrind: an argument made and freed, a lookup, a reply value).
local END_READ = {'created_ms', 'sinks'}
-- A step's ``sink`` is not read (``dependents`` is '' for a sink, as submission writes both),
-- nor its ``error`` (see record).
local STEP_READ = {'state', 'attempt', 'dependents', 'entry', 'queued_ms', 'queue_wait_ms',
                   'runs'}
local DEP_READ = {'deps_left', 'agent', 'attempt', 'instr', 'deps', 'dependents'}
local STEP_WRITE = {'state', 'error', 'result', 'run', 'text'}

-- A step's field names, built once per step id and kept from call to call (the library
-- lives as long as the server): most of what a call used to spend on them. Bounded: plans
-- name their steps freely, so after CACHED step ids (or shapes) the caches start over. (Lua's
-- memory is not counted in maxmemory; 4,100 long ids with three dependents each took 26 MB.)
local CACHED = 1024
local NAMES, N_NAMES = {}, 0
local function names_of(sid)
  local n = NAMES[sid]
  if n == nil then
    N_NAMES = N_NAMES + 1
    n = {}
    for _, f in ipairs(STEP_WRITE) do n[f] = sid .. '|' .. f end
    n.deps_left = sid .. '|deps_left'
    NAMES[sid] = n
  end
  return n
end

local function append(list, sid, fields)
  local k = #list
  for j, f in ipairs(fields) do list[k + j] = sid .. '|' .. f end
end

-- Per task, its records' (step id, dependents hint) pairs in order: its shape. Shapes are
-- kept from call to call, as names are.
local PARTS
local SHAPES, N_SHAPES = {}, 0

local function shape_of(parts)
  local key = (#parts == 2) and (parts[1] .. '\1' .. parts[2]) or table.concat(parts, '\1')
  local shape = SHAPES[key]
  if shape then return shape end
  local names = {unpack(TASK_READ)}
  shape = {names = names, step = {}, dep = {}}
  for j = 1, #parts, 2 do
    local sid, hint = parts[j], parts[j + 1]
    if not shape.step[sid] then
      shape.step[sid] = #names
      append(names, sid, STEP_READ)
    end
    if hint == '?' or hint == '' then  -- a sink, or not known: the record may end the task
      if not shape.ends then
        shape.ends = #names + 1
        for _, f in ipairs(END_READ) do names[#names + 1] = f end
      end
    else
      if not shape.user then
        names[#names + 1] = 'user_input'
        shape.user = #names
      end
      for _, dep in ipairs(split(hint)) do
        if not shape.dep[dep] then
          shape.dep[dep] = #names
          append(names, dep, DEP_READ)
        end
      end
    end
  end
  SHAPES[key] = shape
  N_SHAPES = N_SHAPES + 1
  return shape
end

local VIEWS, VIEW_ORDER

local function view_of(task_id)
  local v = VIEWS[task_id]
  if v == nil then
    local tk, shape = k_task(task_id), shape_of(PARTS[task_id])
    v = {tk = tk, s = shape, x = redis.call('HMGET', tk, unpack(shape.names)), w = {}}
    VIEWS[task_id] = v
    VIEW_ORDER[#VIEW_ORDER + 1] = v
  end
  return v
end

-- The task's totals (steps done, cost, tokens) are written once per flush, however many of
-- its records the call holds: ``totals`` says that a record changed them (in the reply):
-- DONE, the steps done only (its records spent nothing: a no-op, or an agent that calls no
-- model), or SPENT, the cost and tokens too. A field rewritten with its own value cost the
-- server ~4,400 instructions.
local DONE, SPENT = 1, 2
local function flush_view(v)
  if v.totals then
    local x, w = v.x, v.w
    local k = #w
    w[k + 1], w[k + 2] = 'n_done', str(x[T_DONE])
    if v.totals == SPENT then
      w[k + 3], w[k + 4] = 'cost_units', str(x[T_COST])
      w[k + 5], w[k + 6] = 'tokens_in', str(x[T_TIN])
      w[k + 7], w[k + 8] = 'tokens_out', str(x[T_TOUT])
    end
    v.totals = false
  end
  flush(v.tk, v.w)
  v.w = {}
end

-- A dependent's fields, as (array, base): in the reply when a record named it, else read here
-- (kept in ``more`` so that the call's other records see its counter go down).
local function dependent(v, dep)
  local base = v.s.dep[dep]
  if base then return v.x, base end
  v.more = v.more or {}
  local got = v.more[dep]
  if got == nil then
    local names = {}
    append(names, dep, DEP_READ)
    got = redis.call('HMGET', v.tk, unpack(names))
    v.more[dep] = got
  end
  return got, 0
end

-- Results and texts this call wrote, per task (a fan-in readied later in the call, a sink).
local function wrote(v, field)
  v[field] = v[field] or {}
  return v[field]
end

-- The fields ``names`` of the task that this call has not written, in one HMGET.
local function read_missing(v, names, written)
  local missing = {}
  for _, name in ipairs(names) do
    if written[name] == nil then missing[#missing + 1] = name end
  end
  local got = {}
  if #missing > 0 then
    local values = redis.call('HMGET', v.tk, unpack(missing))
    for j, name in ipairs(missing) do got[name] = values[j] end
  end
  return got
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
local function release(task_id, v, sid, dependents, result, spent)
  local deps = split(dependents)
  if #deps == 0 then return {} end
  local steps = {}
  for _, dep in ipairs(deps) do
    local d, b = dependent(v, dep)
    local left = num(d[b + 1]) - 1
    d[b + 1] = left
    put(v.w, names_of(dep).deps_left, str(left))
    if left == 0 then
      steps[#steps + 1] = {sid = dep, agent = d[b + 2], attempt = d[b + 3], instr = d[b + 4],
                           deps = split(d[b + 5]), dependents = d[b + 6]}
    end
  end
  if #steps == 0 then return {} end
  -- What the ready steps need: the input and their dependencies' results (those this call
  -- wrote are known; the others are read).
  local results, ready, names = wrote(v, 'r'), {}, {}
  for _, step in ipairs(steps) do
    for _, dep in ipairs(step.deps) do names[#names + 1] = names_of(dep).result end
  end
  local user_input = v.s.user and v.x[v.s.user]
  if not user_input then names[#names + 1] = 'user_input' end
  local got = read_missing(v, names, results)
  user_input = user_input or got['user_input']
  local inputs = {}
  for j, step in ipairs(steps) do
    ready[j] = step.sid
    for _, dep in ipairs(step.deps) do
      local name = names_of(dep).result
      inputs[dep] = results[name] or got[name]
    end
  end
  return enqueue(task_id, v.tk, ready, ts, v.w, spent,
                 {user_input = user_input, steps = steps, results = inputs})
end

-- The task is complete: its output is the text of its sink steps, in plan order.
local function finish(task_id, v, cost, tin, tout)
  local x, ends = v.x, v.s.ends
  local created, sink_list
  if ends then
    created, sink_list = x[ends], x[ends + 1]
  else  -- the records' hints said none could end the task; the hash says this one did
    local got = redis.call('HMGET', v.tk, unpack(END_READ))
    created, sink_list = got[1], got[2]
  end
  local texts, sinks, names = wrote(v, 't'), split(sink_list), {}
  for _, other in ipairs(sinks) do names[#names + 1] = names_of(other).text end
  local got = read_missing(v, names, texts)
  local parts = {}
  for j, name in ipairs(names) do parts[j] = texts[name] or got[name] or '' end
  local output = table.concat(parts, '\n\n')
  local latency = ts - tonumber(created)
  x[T_STATE] = 'completed'
  put(v.w, 'state', 'completed')
  put(v.w, 'finished_ms', ts_text)
  put(v.w, 'latency_ms', str(latency))
  put(v.w, 'output', output)
  flush_view(v)
  -- Laid out here, not by cjson.encode of a table: cjson formats each number with snprintf
  -- (~4,000 instructions), where str has the task's totals as the hash holds them.
  emit_head(task_id, 'task_completed',
            '{"type":"task_completed","latency_ms":' .. str(latency) .. ',"cost_units":'
            .. str(cost) .. ',"tokens_in":' .. str(tin) .. ',"tokens_out":' .. str(tout)
            .. ',"output":' .. cjson.encode(output) .. ',"task_id":' .. cjson.encode(task_id)
            .. ',"ts":', ts_text)
  expire_task(task_id, ttl_text)
end

local function record(i, v)
  local kind, task_id, sid, attempt_in, carrier = ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
                                                  ARGV[i + 5]
  local result, text = ARGV[i + 6], ARGV[i + 7]
  local run_ms, cost = num(ARGV[i + 8]), num(ARGV[i + 9])
  local tin, tout = num(ARGV[i + 10]), num(ARGV[i + 11])
  local x, b, n = v.x, v.s.step[sid], names_of(sid)
  local state, attempt, dependents, entry, queued_ms, queue_wait_ms, runs =
    x[b + 1], x[b + 2], x[b + 3], x[b + 4], x[b + 5], x[b + 6], x[b + 7]
  local t_state = x[T_STATE]
  local w = v.w
  local unclaimed = ''  -- the end of the step's ``run`` (below)
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
    local queued = num(queued_ms) or ts
    local started = math.max(ts - run_ms, queued)
    local at = started == ts and ts_text or str(started)  -- the time, unless it ran longer
    unclaimed = ',' .. at .. ',' .. str((num(queue_wait_ms) or 0) + math.max(0, started - queued))
      .. ',' .. str((num(runs) or 0) + 1)
    emit_head(task_id, 'step_started', ARGV[i + 13], at)
  end
  local done = num(x[T_DONE]) + 1
  local charged = cost ~= 0 or tin ~= 0 or tout ~= 0
  cost, tin, tout = num(x[T_COST]) + cost, num(x[T_TIN]) + tin, num(x[T_TOUT]) + tout
  -- An earlier attempt's error (fail.lua, or start.lua for a step that lost its worker): a
  -- step holding one is either retrying under a higher attempt or failed, and a failed step
  -- runs again only after redrive.lua raises its attempt and deletes it. So a first attempt
  -- has none to delete; a later one deletes it unread.
  if attempt ~= '1' then redis.call('HDEL', v.tk, n.error) end
  -- The fields a later record of this call may read change in the reply too.
  x[b + 1], x[T_DONE], x[T_COST], x[T_TIN], x[T_TOUT] = 'completed', done, cost, tin, tout
  wrote(v, 'r')[n.result] = result
  local k = #w
  w[k + 1], w[k + 2] = n.result, result
  w[k + 3], w[k + 4] = n.state, 'completed'
  -- What the completed attempt took, in one field rather than one each (a call's cost is
  -- mostly its writes): finished_ms, run_ms, cost, tokens in and out, and, for a step that ran
  -- unclaimed, its started_ms, queue_wait_ms and runs (a claimed step's are fields of their
  -- own, from start.lua). store.RUN_FIELDS reads it.
  w[k + 5], w[k + 6] = n.run, ts_text .. ',' .. ARGV[i + 8] .. ',' .. ARGV[i + 9] .. ','
    .. ARGV[i + 10] .. ',' .. ARGV[i + 11] .. unclaimed
  v.totals = (charged or v.totals == SPENT) and SPENT or DONE
  if dependents == '' then  -- a sink (the hash's ``sink`` says the same): its text is output
    w[k + 7], w[k + 8] = n.text, text
    wrote(v, 't')[n.text] = text
  end
  local completed = ARGV[i + 14]
  local over = nil
  if max_tokens > 0 and tin + tout >= max_tokens then
    over = 'token budget exhausted: ' .. (tin + tout) .. ' of ' .. max_tokens .. ' tokens'
  elseif max_cost > 0 and cost >= max_cost then
    over = 'cost budget exhausted: ' .. cost .. ' of ' .. max_cost .. ' cost units'
  end
  local n_steps = num(x[T_STEPS])
  if t_state ~= 'running' or (over and done < n_steps) then
    emit_head(task_id, 'step_completed', completed, ts_text)
    if t_state ~= 'running' then return 1 end
    put(w, 'error', over)
    flush_view(v)
    close_task(task_id, v.tk, 'failed', ts, ttl, {type = 'task_failed', step_id = sid,
               error = over, budget = true})
    VIEWS[task_id] = nil  -- close_task wrote past the view: a later record reads afresh
    return 3
  end
  local queued = release(task_id, v, sid, dependents, result, tin + tout)
  emit_head(task_id, 'step_completed', completed, ts_text .. queued_json(queued))
  if done < n_steps then return 1 end
  finish(task_id, v, cost, tin, tout)
  return 2
end

local function view_and_record(i)
  return record(i, view_of(ARGV[i + 2]))
end

-- Per call: everything below runs at every call; the helpers above are built once.
ttl, max_tokens, max_cost = num(ARGV[2]), num(ARGV[3]) or 0, num(ARGV[4]) or 0
if ttl ~= TTL or TTL == nil then  -- (a missing TTL fails here, as it always did)
  TTL, TTL_TEXT = ttl, string.format('%d', ttl)  -- EXPIRE takes a whole number of seconds
end
ttl_text = TTL_TEXT
ts = now_ms()
ts_text = str(ts)
acks, ack_order = {}, {}
PARTS, VIEWS, VIEW_ORDER = {}, {}, {}
if N_NAMES > CACHED or N_SHAPES > CACHED then
  NAMES, N_NAMES, SHAPES, N_SHAPES = {}, 0, {}, 0
end
local consumer, slots = ARGV[5], ARGV[6]

-- Where each record starts; and each task's shape: its records' steps, and the dependents
-- they name.
local starts, i = {}, 7
while i <= #ARGV do
  starts[#starts + 1] = i
  if ARGV[i] == 'a' then
    i = i + ACK_RECORD
  else
    local task_id = ARGV[i + 2]
    local parts = PARTS[task_id]
    if parts == nil then
      PARTS[task_id] = {ARGV[i + 3], ARGV[i + 15]}
    else
      parts[#parts + 1] = ARGV[i + 3]
      parts[#parts + 1] = ARGV[i + 15]
    end
    i = i + RECORD
  end
end

-- A record that fails midway (a script error) must not take the writes of those before it
-- along: they are flushed, its own pending hash writes are dropped, the error is returned and
-- nothing is ACKed, so every record of the call is delivered again and the fences make the
-- ones already recorded no-ops. (What the failed record had already added to a stream, a
-- step_started or a queued entry, stays: a script cannot take back a write.)
local codes = {}
for _, i in ipairs(starts) do
  local kind, agent = ARGV[i], ARGV[i + 1]
  local code, ack = 1, ARGV[i + 2]
  if kind ~= 'a' then
    ack = ARGV[i + 12]
    local before = VIEWS[ARGV[i + 2]]
    local mark = before and #before.w or 0
    -- The totals as they were: the record counts itself in them before it may fail.
    local totals, done, cost, tin, tout, pending
    if before then
      local x = before.x
      totals, done, cost, tin, tout = before.totals, x[T_DONE], x[T_COST], x[T_TIN], x[T_TOUT]
      pending = before.w
    end
    local ok, err = pcall(view_and_record, i)
    if not ok then
      local v = VIEWS[ARGV[i + 2]]
      if v and (v == before or mark == 0) then
        for j = #v.w, mark + 1, -1 do v.w[j] = nil end
        if v == before and v.w == pending then
          local x = v.x
          v.totals, x[T_DONE], x[T_COST], x[T_TIN], x[T_TOUT] = totals, done, cost, tin, tout
        else
          -- A view it made (all of its writes dropped above), or one it flushed before it
          -- failed (its task completed, or stopped on its budget: the hash holds the totals
          -- with the rest of what it wrote): no totals to take back or to write again.
          v.totals = false
        end
      end
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
    local count = math.min(num(n), QUEUED[agent] or 0)
    if count > 0 then
      -- pcall: a missing group (NOGROUP) must not fail a call whose records are written.
      local got = redis.pcall('XREADGROUP', 'GROUP', agent, consumer, 'COUNT', str(count),
                              'STREAMS', k_agent(agent), '>')
      if type(got) == 'table' and got.err == nil and got[1] then
        -- Flat (agent, then per entry: id, field count, fields): each table of a reply costs
        -- the server a few lookups to convert, an entry's two tables ~3 µs.
        local flat = {agent}
        for _, e in ipairs(got[1][2]) do
          local f, k = e[2], #flat
          flat[k + 1], flat[k + 2] = e[1], #f
          for j = 1, #f do flat[k + 2 + j] = f[j] end
        end
        handed[#handed + 1] = flat
      end
    end
  end
end
return {codes, handed}
