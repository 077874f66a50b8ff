-- ARGV: prefix, task_id, plan_created, n, then n field/value pairs of the new task hash, then one
-- group per agent with root steps: agent, its step ids ("a,b"), the entry body ``x``, and one
-- step_queued event per step. Events come as JSON that ends in ``"ts":`` (the server's time
-- completes them). store.submission lays all of this out, so the server only adds what it alone
-- knows: the time and the entries' ids.
-- Creates the task, queues its root steps and writes plan_created, all or nothing.
local task_id, n = ARGV[2], tonumber(ARGV[4])
local tk = k_task(task_id)
if redis.call('EXISTS', tk) == 1 then return 0 end
local ts = now_ms()
local w = {unpack(ARGV, 5, 4 + 2 * n)}
put(w, 'created_ms', ts)
local events = k_events(task_id)
redis.call('XADD', events, '*', 'type', 'plan_created', 'data', ARGV[3] .. ts .. '}')
local i = 5 + 2 * n
while i <= #ARGV do
  local agent, ids = ARGV[i], ARGV[i + 1]
  local entry = redis.call('XADD', k_agent(agent), '*', 't', task_id, 's', ids, 'x', ARGV[i + 2])
  i = i + 3
  for _, sid in ipairs(split(ids, ',')) do
    put(w, sid .. '|queued_ms', ts)
    put(w, sid .. '|entry', entry)
    redis.call('XADD', events, '*', 'type', 'step_queued', 'data', ARGV[i] .. ts .. '}')
    i = i + 1
  end
end
flush(tk, w)
redis.call('ZADD', P .. ':tasks', ts, task_id)
return ts
