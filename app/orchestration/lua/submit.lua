-- ARGV: prefix, then one group per task: its count of arguments k, then the k arguments:
-- task_id, chosen ('1' if the client named the task id, else '0': the API generated it),
-- plan_created, the new task hash's field names ("a,b": n of them, kept split from call to
-- call, as plans repeat), their n values, then one group per agent with root steps: agent,
-- its step ids ("a,b") and the entry body ``x``. plan_created comes as JSON that ends in
-- ``"ts":`` (the server's time completes it) and names the root steps it queues
-- (``queued``): they get no step_queued event of their own. store.submission lays all of this
-- out, so the server only adds what it alone knows: the time and the entries' ids. Several tasks
-- per call: the API sends together the submissions that arrived while its previous call was in
-- flight (TaskStore.submit).
-- Creates each task, queues its root steps and writes plan_created, all or nothing per task.
-- Returns, per task, {server time it was created at, plan_created's entry id}, or {0, ''} if its
-- id exists already.
-- The new task hash's field names, split once per list: the lists repeat from task to task
-- (a plan's shape). In a memo apart from split's: plans whose step ids never repeat would
-- churn the small lists that complete.lua reads there.
local FIELD_NAMES = {lists = {}, n = 0, max = 256}

-- Per call:
local ts = now_ms()
local ts_text = str(ts)  -- formatted once for every event of the call
local K_TASKS = P .. ':tasks'

-- The tasks' index (recent tasks, newest first) is read once and written once per call, not
-- per task: its entry, written with the task, also tells whether a generated id exists.
local groups, ids = {}, {}
local i = 2
while i <= #ARGV do
  local k = num(ARGV[i])
  groups[#groups + 1] = i + 1
  ids[#ids + 1] = ARGV[i + 1]
  i = i + 1 + k
end
local indexed = redis.call('ZMSCORE', K_TASKS, unpack(ids))
local created, made, index = {}, {}, {}

local function submit(j)
  local first = groups[j]
  local last = (groups[j + 1] or (#ARGV + 2)) - 2
  local task_id, chosen, names = ARGV[first], ARGV[first + 1], split_in(FIELD_NAMES, ARGV[first + 3])
  local tk = k_task(task_id)
  if made[task_id] then return {0, ''} end  -- the same id twice in one call
  if chosen == '1' then
    -- A client's own id may name a task whose index entry is gone (trimmed at its creation
    -- time plus the TTL) while its keys live on.
    if redis.call('EXISTS', tk) == 1 then return {0, ''} end
  elseif indexed[j] then
    -- A generated id (uuid4) is new unless a call whose reply was lost created it (the client
    -- retries on connection errors).
    return {0, ''}
  end
  local n, w = #names, {}
  for f = 1, n do
    w[2 * f - 1], w[2 * f] = names[f], ARGV[first + 3 + f]
  end
  put(w, 'created_ms', ts_text)
  local id = emit_head(task_id, 'plan_created', ARGV[first + 2], ts_text)
  local at = first + 4 + n
  while at <= last do
    local agent, sids = ARGV[at], ARGV[at + 1]
    local entry = redis.call('XADD', k_agent(agent), '*', 't', task_id, 's', sids, 'x', ARGV[at + 2])
    at = at + 3
    for _, sid in ipairs(split(sids)) do
      put(w, sid .. '|queued_ms', ts_text)
      put(w, sid .. '|entry', entry)
    end
  end
  flush(tk, w)
  made[task_id] = true
  index[#index + 1] = ts_text
  index[#index + 1] = task_id
  return {ts, id}
end

-- A task whose creation fails (a script error) fails the call; those before it are created
-- and indexed.
local ok, err = pcall(function()
  for j = 1, #groups do created[j] = submit(j) end
end)
if #index > 0 then redis.call('ZADD', K_TASKS, unpack(index)) end
if not ok then error(err, 0) end
return created
