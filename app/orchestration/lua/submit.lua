-- ARGV: prefix, then one group per task: its count of arguments k, then the k arguments:
-- task_id, chosen ('1' if the client named the task id, else '0': the API generated it),
-- plan_created, n, n field/value pairs of the new task hash, then one group per agent with root
-- steps: agent, its step ids ("a,b") and the entry body ``x``. plan_created comes as JSON that
-- ends in ``"ts":`` (the server's time completes it) and names the root steps it queues
-- (``queued``): they get no step_queued event of their own. store.submission lays all of this
-- out, so the server only adds what it alone knows: the time and the entries' ids. Several tasks
-- per call: the API sends together the submissions that arrived while its previous call was in
-- flight (TaskStore.submit).
-- Creates each task, queues its root steps and writes plan_created, all or nothing per task.
-- Returns, per task, {server time it was created at, plan_created's entry id}, or {0, ''} if its
-- id exists already.
local ts = now_ms()
local ts_text = tostring(ts)  -- formatted once for every event of the call
local K_TASKS = P .. ':tasks'

local function submit(first, last)
  local task_id, chosen, n = ARGV[first], ARGV[first + 1], tonumber(ARGV[first + 3])
  local tk = k_task(task_id)
  if chosen == '1' then
    if redis.call('EXISTS', tk) == 1 then return {0, ''} end
    redis.call('ZADD', K_TASKS, ts, task_id)
  elseif redis.call('ZADD', K_TASKS, 'NX', ts, task_id) == 0 then
    -- A generated id (uuid4) is new unless a call whose reply was lost created it (the client
    -- retries on connection errors): the index entry, written with the task, tells, so no
    -- EXISTS is needed on this path.
    return {0, ''}
  end
  local w = {unpack(ARGV, first + 4, first + 3 + 2 * n)}
  put(w, 'created_ms', ts)
  local id = emit_head(task_id, 'plan_created', ARGV[first + 2], ts_text)
  local i = first + 4 + 2 * n
  while i <= last do
    local agent, ids = ARGV[i], ARGV[i + 1]
    local entry = redis.call('XADD', k_agent(agent), '*', 't', task_id, 's', ids, 'x', ARGV[i + 2])
    i = i + 3
    for _, sid in ipairs(split(ids, ',')) do
      put(w, sid .. '|queued_ms', ts)
      put(w, sid .. '|entry', entry)
    end
  end
  flush(tk, w)
  return {ts, id}
end

local created, i = {}, 2
while i <= #ARGV do
  local k = tonumber(ARGV[i])
  created[#created + 1] = submit(i + 1, i + k)
  i = i + 1 + k
end
return created
