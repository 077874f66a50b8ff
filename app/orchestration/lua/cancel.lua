-- ARGV: prefix, task_id, ttl_s, reason
-- Returns -1 unknown task, 0 already terminal, 1 cancelled.
local task_id, ttl = ARGV[2], tonumber(ARGV[3])
local tk = k_task(task_id)
local state = redis.call('HGET', tk, 'state')
if not state then return -1 end
if state ~= 'running' then return 0 end
close_task(task_id, tk, 'cancelled', now_ms(), ttl, {type = 'task_cancelled', reason = ARGV[4]})
return 1
