-- ARGV: prefix, then one group per task: its count of arguments k, then the k arguments:
-- task_id, plan_created, n, n field/value pairs of the new task hash, then one group per agent
-- with root steps: agent, its step ids ("a,b"), the entry body ``x``, and one step_queued event
-- per step. Events come as JSON that ends in ``"ts":`` (the server's time completes them).
-- store.submission lays all of this out, so the server only adds what it alone knows: the time
-- and the entries' ids. Several tasks per call: the API sends together the submissions that
-- arrived while its previous call was in flight (TaskStore.submit).
-- Creates each task, queues its root steps and writes plan_created, all or nothing per task.
-- Returns, per task, the server time it was created at, or 0 if its id exists already.
local ts = now_ms()
local ts_text = tostring(ts)  -- formatted once for every event of the call

local function submit(first, last)
  local task_id, n = ARGV[first], tonumber(ARGV[first + 2])
  local tk = k_task(task_id)
  if redis.call('EXISTS', tk) == 1 then return 0 end
  local w = {unpack(ARGV, first + 3, first + 2 + 2 * n)}
  put(w, 'created_ms', ts)
  emit_head(task_id, 'plan_created', ARGV[first + 1], ts_text)
  local i = first + 3 + 2 * n
  while i <= last do
    local agent, ids = ARGV[i], ARGV[i + 1]
    local entry = redis.call('XADD', k_agent(agent), '*', 't', task_id, 's', ids, 'x', ARGV[i + 2])
    i = i + 3
    for _, sid in ipairs(split(ids, ',')) do
      put(w, sid .. '|queued_ms', ts)
      put(w, sid .. '|entry', entry)
      emit_head(task_id, 'step_queued', ARGV[i], ts_text)
      i = i + 1
    end
  end
  flush(tk, w)
  redis.call('ZADD', P .. ':tasks', ts, task_id)
  return ts
end

local created, i = {}, 2
while i <= #ARGV do
  local k = tonumber(ARGV[i])
  created[#created + 1] = submit(i + 1, i + k)
  i = i + 1 + k
end
return created
