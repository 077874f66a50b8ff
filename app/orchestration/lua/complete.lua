-- ARGV: prefix, task_id, sid, attempt, result_json, summary, text, run_ms, cost, tokens_in,
--       tokens_out, ttl_s
-- Records a step's result and queues the steps it made ready, atomically. Fenced: only the
-- current attempt of a running step may complete it, so a stale or duplicate attempt is a no-op.
-- Returns 1 when recorded, 2 when it also completed the task, 0 when fenced out.
local task_id, sid, attempt = ARGV[2], ARGV[3], ARGV[4]
local tk = k_task(task_id)
if sget(tk, sid, 'state') ~= 'running' or sget(tk, sid, 'attempt') ~= attempt then return 0 end
local ts = now_ms()
local run_ms, cost = tonumber(ARGV[8]), tonumber(ARGV[9])
local tin, tout = tonumber(ARGV[10]), tonumber(ARGV[11])
local ttl = tonumber(ARGV[12])
local agent = sget(tk, sid, 'agent')
redis.call('HSET', k_results(task_id), sid, ARGV[5])
redis.call('HDEL', tk, sid .. '|error')
redis.call('HSET', tk, sid .. '|state', 'completed', sid .. '|finished_ms', ts,
           sid .. '|run_ms', run_ms, sid .. '|cost', cost, sid .. '|tin', tin, sid .. '|tout', tout)
if sget(tk, sid, 'sink') == '1' then redis.call('HSET', tk, sid .. '|text', ARGV[7]) end
redis.call('HINCRBYFLOAT', tk, 'cost_units', cost)
redis.call('HINCRBY', tk, 'tokens_in', tin)
redis.call('HINCRBY', tk, 'tokens_out', tout)
local done = redis.call('HINCRBY', tk, 'n_done', 1)
emit(task_id, {type = 'step_completed', step_id = sid, agent = agent, attempt = tonumber(attempt),
               summary = ARGV[6], run_ms = run_ms, cost_units = cost}, ts)
if redis.call('HGET', tk, 'state') ~= 'running' then return 1 end
local ready = {}
for _, dep in ipairs(split(sget(tk, sid, 'dependents'), ',')) do
  if redis.call('HINCRBY', tk, dep .. '|deps_left', -1) == 0 then ready[#ready + 1] = dep end
end
enqueue(task_id, tk, ready, ts)
if done < tonumber(redis.call('HGET', tk, 'n_steps')) then return 1 end
local texts = {}
for _, s in ipairs(split(redis.call('HGET', tk, 'steps'), ',')) do
  if sget(tk, s, 'sink') == '1' then texts[#texts + 1] = sget(tk, s, 'text') or '' end
end
local output = table.concat(texts, '\n\n')
local latency = ts - tonumber(redis.call('HGET', tk, 'created_ms'))
redis.call('HSET', tk, 'state', 'completed', 'finished_ms', ts, 'latency_ms', latency,
           'output', output)
emit(task_id, {type = 'task_completed', latency_ms = latency,
               cost_units = tonumber(redis.call('HGET', tk, 'cost_units')),
               tokens_in = tonumber(redis.call('HGET', tk, 'tokens_in')),
               tokens_out = tonumber(redis.call('HGET', tk, 'tokens_out')),
               output = output}, ts)
expire_task(task_id, ttl)
return 2
