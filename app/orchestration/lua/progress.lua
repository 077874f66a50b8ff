-- ARGV: prefix, task_id, sid, attempt, text
-- Appends step_progress only while the attempt owns a running step of a running task, so a
-- late or stale writer can neither pollute the log nor re-create an expired one.
local task_id, sid, attempt = ARGV[2], ARGV[3], ARGV[4]
local tk = k_task(task_id)
local f = redis.call('HMGET', tk, 'state', sid .. '|state', sid .. '|attempt', sid .. '|agent')
if f[1] ~= 'running' or f[2] ~= 'running' or f[3] ~= attempt then return 0 end
emit(task_id, {type = 'step_progress', step_id = sid, agent = f[4], attempt = tonumber(attempt),
               text = ARGV[5]}, now_ms())
return 1
