-- ARGV: prefix, task_id, user_input, plan_json, planner, ttl_s
-- Creates the task, queues its root steps and writes plan_created, all or nothing.
local task_id, user_input, plan_json, planner = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local tk = k_task(task_id)
if redis.call('EXISTS', tk) == 1 then return 0 end
local plan = cjson.decode(plan_json)
local ts = now_ms()
local ids, dependents, roots, known, sinks = {}, {}, {}, {user_input = user_input, steps = {}}, {}
for _, step in ipairs(plan['steps']) do
  ids[#ids + 1] = step['id']
  dependents[step['id']] = {}
end
for _, step in ipairs(plan['steps']) do
  local seen = {}
  for _, dep in ipairs(step['depends_on']) do
    if not seen[dep] then seen[dep] = true; table.insert(dependents[dep], step['id']) end
  end
end
local w = {'state', 'running', 'user_input', user_input, 'plan', plan_json, 'planner', planner,
           'created_ms', ts, 'steps', table.concat(ids, ','), 'n_steps', #ids, 'n_done', 0,
           'cost_units', 0, 'tokens_in', 0, 'tokens_out', 0}
for _, step in ipairs(plan['steps']) do
  local sid, ndeps, seen = step['id'], 0, {}
  for _, dep in ipairs(step['depends_on']) do
    if not seen[dep] then seen[dep] = true; ndeps = ndeps + 1 end
  end
  put(w, sid .. '|state', 'pending')
  put(w, sid .. '|attempt', 1)
  put(w, sid .. '|agent', step['agent'])
  put(w, sid .. '|instr', step['instruction'])
  put(w, sid .. '|deps', table.concat(step['depends_on'], ','))
  put(w, sid .. '|deps_left', ndeps)
  put(w, sid .. '|dependents', table.concat(dependents[sid], ','))
  put(w, sid .. '|sink', (#dependents[sid] == 0) and 1 or 0)
  if #dependents[sid] == 0 then sinks[#sinks + 1] = sid end
  if ndeps == 0 then
    roots[#roots + 1] = sid
    known.steps[#known.steps + 1] = {sid = sid, agent = step['agent'], attempt = 1,
                                     instr = step['instruction'], deps = {}}
  end
end
-- The sinks, in plan order: their text is the task's output (complete.lua).
put(w, 'sinks', table.concat(sinks, ','))
emit_raw(task_id, {type = 'plan_created', planner = planner}, ts, 'plan', plan_json)
enqueue(task_id, tk, roots, ts, w, 0, known)
flush(tk, w)
redis.call('ZADD', P .. ':tasks', ts, task_id)
return ts
