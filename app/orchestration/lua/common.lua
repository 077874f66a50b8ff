-- Shared helpers at the head of the function library (app/orchestration/scripts.py): loaded
-- once, not rebuilt at every call as a script's helpers are. Keys are built from the prefix
-- with the layout of app/keys.py; this is a single-node design (a step completion touches the
-- task and the next agent's stream atomically).
-- A call's arguments and what follows from them; ``begin`` sets them first thing in every
-- call (one call runs at a time, so library-level state is the call's until it returns).
local ARGV, P, K_DELAYED, K_DLQ
-- Entries this call added, per agent (complete.lua hands them to its caller).
local QUEUED

local function begin(args)
  ARGV, P = args, args[1]
  K_DELAYED, K_DLQ = P .. ':delayed', P .. ':dlq'
  QUEUED = {}
end

local function k_task(t) return P .. ':task:' .. t end
local function k_events(t) return P .. ':task:' .. t .. ':events' end
local function k_agent(a) return P .. ':agent:' .. a end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A comma-separated list (step ids: "a,b"; empty parts dropped). The lists a plan names
-- (dependents, dependencies, sinks) repeat from task to task, and a split was ~1.5 µs: they
-- are kept in ``memo`` (bounded, like the other caches of the library: {lists =, n =, max =})
-- and shared: callers only read them (the functions' sandbox has no setmetatable to enforce
-- it).
local function split_in(memo, s)
  if s == nil or s == false or s == '' then return {} end
  local out = memo.lists[s]
  if out then return out end
  out = {}
  local at = 1
  while true do
    local j = string.find(s, ',', at, true)
    if j == nil then
      if at <= #s then out[#out + 1] = string.sub(s, at) end
      break
    end
    if j > at then out[#out + 1] = string.sub(s, at, j - 1) end
    at = j + 1
  end
  if memo.n >= memo.max then memo.lists, memo.n = {}, 0 end
  memo.lists[s], memo.n = out, memo.n + 1
  return out
end

local SPLITS = {lists = {}, n = 0, max = 1024}
local function split(s) return split_in(SPLITS, s) end

-- A number as the text that a field or an event holds: "%.17g", whole numbers in full and
-- others at full precision, so the text reads back as the same number (as a number passed to
-- redis.call does: Redis writes it with "%.17g", Valkey with the shortest such text). sprintf
-- costs ~2,700 instructions and a task's steps wrote some twenty numbers: the small counts
-- (attempts, counters, a no-op step's zero cost) are kept in a table, filled as they come (the
-- library's top level, which runs at load, has no string library), and so are the two latest
-- other numbers: a call's time, written in many fields and events, stays while another number
-- (a step's queue wait) comes between two of its uses.
local INTS, RECENT, RECENT_TEXT, OLDER, OLDER_TEXT = {}, nil, nil, nil, nil
local function str(n)
  local s = INTS[n]
  if s then return s end
  if n >= 0 and n < 1024 and n % 1 == 0 then
    s = string.format('%d', n)
    INTS[n] = s
    return s
  end
  if n == RECENT then return RECENT_TEXT end
  if n == OLDER then
    s = OLDER_TEXT
  else
    s = string.format('%.17g', n)
  end
  OLDER, OLDER_TEXT, RECENT, RECENT_TEXT = RECENT, RECENT_TEXT, n, s
  return s
end

-- tonumber for a number the script read or was given as text. Most are small counts ('0' for
-- a no-op step's cost and tokens and a new task's totals, a task's steps, a counter of
-- dependencies left), and tonumber on a string was ~0.4 µs (strtod): those are kept, by their
-- text, in a table bounded by what it admits: texts of up to four characters that read as a
-- whole number 0-1023 ('12', '012', ' 12', '1e2'...), a few thousand at most.
local NUMS = {['0'] = 0}
local function num(s)
  local n = NUMS[s]
  if n ~= nil then return n end
  n = tonumber(s)
  if n and type(s) == 'string' and #s < 5 and n >= 0 and n < 1024 and n % 1 == 0 then
    NUMS[s] = n
  end
  return n
end

local function emit(task_id, ev, ts)
  ev['task_id'] = task_id
  ev['ts'] = ts
  return redis.call('XADD', k_events(task_id), '*', 'type', ev['type'], 'data', cjson.encode(ev))
end

-- An event whose JSON the caller laid out up to its time (``..."ts":``): the server adds it
-- (``ts`` a number, or its text when one time goes into many events).
local function emit_head(task_id, event_type, head, ts)
  return redis.call('XADD', k_events(task_id), '*', 'type', event_type, 'data', head .. ts .. '}')
end

local function sget(tk, sid, f) return redis.call('HGET', tk, sid .. '|' .. f) end

-- Several fields of one step in one HMGET: returns a table keyed by field name.
local function smget(tk, sid, fields)
  local names = {}
  for i, f in ipairs(fields) do names[i] = sid .. '|' .. f end
  local values = redis.call('HMGET', tk, unpack(names))
  local out = {}
  for i, f in ipairs(fields) do out[f] = values[i] end
  return out
end

-- Writes to the task hash are gathered in a list and sent as one HSET: each redis.call is
-- work for the server, and most of a step's cost is these calls.
local function put(w, field, value)
  w[#w + 1] = field
  w[#w + 1] = value
end

local function flush(tk, w)
  if #w > 0 then redis.call('HSET', tk, unpack(w)) end
end

-- Queue a set of ready steps: one stream entry per agent (a batch). Returns the queued steps,
-- {{sid =, agent =, attempt =}, ...}: the caller's event names them (``queued``), or, with
-- ``announce``, each gets a step_queued event here (a step queued on its own: a retry that is
-- due, a redrive).
-- Each step remembers the entry that carries it: only that entry may run it (start.lua), so a
-- stale or duplicated entry is recognised whatever attempt numbers say. The entry also carries
-- what its steps need to run (field ``x``: the task's input and tokens spent, each step's
-- attempt, instruction and dependencies' results) and each step's dependents (``d``, which
-- the worker hands back with the step's result so that complete.lua reads them with the step),
-- so a worker can run a short step at once and record its start and its result in one call
-- (complete.lua, kind 'f'). ``spent`` is the task's token total when the caller has it; the
-- field writes go to ``w`` (caller flushes).
-- ``known`` gives the input and the steps when the caller has read them: {user_input = ...,
-- steps = {{sid =, agent =, attempt =, instr =, deps = {}, dependents =}, ...}, results =
-- {[sid] = result JSON}} with every result the steps need (complete.lua reads them with its
-- view of the task). Without ``known`` they are read here. A new task's root steps are laid
-- out by store.submission (Python) in the same format: change both together.
local function enqueue(task_id, tk, sids, ts, w, spent, known, announce)
  local queued = {}
  if #sids == 0 then return queued end
  local user_input, steps, results = nil, {}, {}
  if known then
    user_input, steps, results = known.user_input, known.steps, known.results
  else
    local names = {'user_input', 'tokens_in', 'tokens_out'}
    for _, sid in ipairs(sids) do
      for _, f in ipairs({'agent', 'attempt', 'instr', 'deps', 'dependents'}) do
        names[#names + 1] = sid .. '|' .. f
      end
    end
    local v = redis.call('HMGET', tk, unpack(names))
    user_input = v[1]
    if spent == nil then spent = (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0) end
    local all_deps = {}
    for i, sid in ipairs(sids) do
      local b = 3 + 5 * (i - 1)
      steps[i] = {sid = sid, agent = v[b + 1], attempt = v[b + 2], instr = v[b + 3],
                  deps = split(v[b + 4]), dependents = v[b + 5]}
      for _, dep in ipairs(steps[i].deps) do all_deps[#all_deps + 1] = dep end
    end
    if #all_deps > 0 then
      local names = {}
      for i, dep in ipairs(all_deps) do names[i] = dep .. '|result' end
      local r = redis.call('HMGET', tk, unpack(names))
      for i, dep in ipairs(all_deps) do results[dep] = r[i] end
    end
  end
  local by_agent, order = {}, {}
  for _, step in ipairs(steps) do
    if by_agent[step.agent] == nil then by_agent[step.agent] = {}; order[#order + 1] = step.agent end
    table.insert(by_agent[step.agent], step)
  end
  local head = '{"u":' .. cjson.encode(user_input or '') .. ',"k":' .. str(spent or 0) .. ',"s":{'
  for _, agent in ipairs(order) do
    local batch, ids, specs = by_agent[agent], {}, {}
    for j, step in ipairs(batch) do
      ids[j] = step.sid
      local inputs = {}
      for _, dep in ipairs(step.deps) do
        if results[dep] then inputs[#inputs + 1] = cjson.encode(dep) .. ':' .. results[dep] end
      end
      specs[j] = cjson.encode(step.sid) .. ':{"a":' .. step.attempt .. ',"i":'
        .. cjson.encode(step.instr or '') .. ',"in":{' .. table.concat(inputs, ',') .. '},"d":'
        .. cjson.encode(step.dependents or '') .. '}'
    end
    local x = head .. table.concat(specs, ',') .. '}}'
    local entry = redis.call('XADD', k_agent(agent), '*', 't', task_id, 's', table.concat(ids, ','),
                             'x', x)
    QUEUED[agent] = (QUEUED[agent] or 0) + 1
    for _, step in ipairs(batch) do
      put(w, step.sid .. '|state', 'queued')
      put(w, step.sid .. '|queued_ms', str(ts))
      put(w, step.sid .. '|entry', entry)
      queued[#queued + 1] = {sid = step.sid, agent = agent, attempt = step.attempt}
      if announce then
        emit(task_id, {type = 'step_queued', step_id = step.sid, agent = agent,
                       attempt = tonumber(step.attempt)}, ts)
      end
    end
  end
  return queued
end

local function expire_task(task_id, ttl)
  redis.call('EXPIRE', k_task(task_id), ttl)
  redis.call('EXPIRE', k_events(task_id), ttl)
end

-- End the task (failed or cancelled): steps that have not finished are cancelled.
local function close_task(task_id, tk, state, ts, ttl, ev)
  redis.call('HSET', tk, 'state', state, 'finished_ms', ts,
             'latency_ms', ts - tonumber(redis.call('HGET', tk, 'created_ms')))
  for _, sid in ipairs(split(redis.call('HGET', tk, 'steps'))) do
    local st = sget(tk, sid, 'state')
    if st == 'running' then
      -- It started, so it gets its closing event (invariant 5); its late result is fenced out.
      emit(task_id, {type = 'step_failed', step_id = sid, agent = sget(tk, sid, 'agent'),
                     attempt = tonumber(sget(tk, sid, 'attempt')), cancelled = true,
                     error = 'task ' .. state .. ' while the step ran'}, ts)
    end
    if st == 'pending' or st == 'queued' or st == 'retrying' or st == 'running' then
      redis.call('HSET', tk, sid .. '|state', 'cancelled')
    end
  end
  ev['latency_ms'] = ts - tonumber(redis.call('HGET', tk, 'created_ms'))
  emit(task_id, ev, ts)
  expire_task(task_id, ttl)
end
