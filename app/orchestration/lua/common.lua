-- Shared helpers, prepended to every script (EVAL has no imports).
-- Keys are built from the prefix with the layout of app/keys.py; this is a single-node design
-- (a step completion touches the task and the next agent's stream atomically).
local P = ARGV[1]
local function k_task(t) return P .. ':task:' .. t end
local function k_results(t) return P .. ':task:' .. t .. ':results' end
local function k_events(t) return P .. ':task:' .. t .. ':events' end
local function k_agent(a) return P .. ':agent:' .. a end
local K_DELAYED = P .. ':delayed'
local K_DLQ = P .. ':dlq'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s, sep)
  local out = {}
  if s == nil or s == false or s == '' then return out end
  for part in string.gmatch(s, '([^' .. sep .. ']+)') do out[#out + 1] = part end
  return out
end

local function emit(task_id, ev, ts)
  ev['task_id'] = task_id
  ev['ts'] = ts
  return redis.call('XADD', k_events(task_id), '*', 'type', ev['type'], 'data', cjson.encode(ev))
end

-- Like emit, with one field whose value is JSON text already (cjson would turn [] into {}).
local function emit_raw(task_id, ev, ts, field, json)
  ev['task_id'] = task_id
  ev['ts'] = ts
  local data = string.sub(cjson.encode(ev), 1, -2) .. ',' .. cjson.encode(field) .. ':' .. json .. '}'
  return redis.call('XADD', k_events(task_id), '*', 'type', ev['type'], 'data', data)
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

-- Queue a set of ready steps: one stream entry per agent (a batch), one event per step.
-- Each step remembers the entry that carries it: only that entry may run it (start.lua), so a
-- stale or duplicated entry is recognised whatever attempt numbers say. ``known`` maps a step
-- to {agent, attempt} when the caller has them; the field writes go to ``w`` (caller flushes).
local function enqueue(task_id, tk, sids, ts, w, known)
  if #sids == 0 then return end
  if known == nil then
    known = {}
    local names = {}
    for _, sid in ipairs(sids) do
      names[#names + 1] = sid .. '|agent'
      names[#names + 1] = sid .. '|attempt'
    end
    local values = redis.call('HMGET', tk, unpack(names))
    for i, sid in ipairs(sids) do known[sid] = {values[2 * i - 1], values[2 * i]} end
  end
  local by_agent, order = {}, {}
  for _, sid in ipairs(sids) do
    local agent = known[sid][1]
    if by_agent[agent] == nil then by_agent[agent] = {}; order[#order + 1] = agent end
    table.insert(by_agent[agent], sid)
  end
  for _, agent in ipairs(order) do
    local batch = by_agent[agent]
    local entry = redis.call('XADD', k_agent(agent), '*', 't', task_id, 's', table.concat(batch, ','))
    for _, sid in ipairs(batch) do
      put(w, sid .. '|state', 'queued')
      put(w, sid .. '|queued_ms', ts)
      put(w, sid .. '|entry', entry)
      emit(task_id, {type = 'step_queued', step_id = sid, agent = agent,
                     attempt = tonumber(known[sid][2])}, ts)
    end
  end
end

local function expire_task(task_id, ttl)
  redis.call('EXPIRE', k_task(task_id), ttl)
  redis.call('EXPIRE', k_results(task_id), ttl)
  redis.call('EXPIRE', k_events(task_id), ttl)
end

-- End the task (failed or cancelled): steps that have not finished are cancelled.
local function close_task(task_id, tk, state, ts, ttl, ev)
  redis.call('HSET', tk, 'state', state, 'finished_ms', ts,
             'latency_ms', ts - tonumber(redis.call('HGET', tk, 'created_ms')))
  for _, sid in ipairs(split(redis.call('HGET', tk, 'steps'), ',')) do
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
