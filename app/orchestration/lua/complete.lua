-- ARGV: prefix, task_id, sid, attempt, result_json, summary, text, run_ms, cost, tokens_in,
--       tokens_out, ttl_s, max_tokens, max_cost (the task's budget; 0 = none),
--       ack_entry (the agent-stream entry to XACK with the result, or '')
-- Records a step's result and queues the steps it made ready, atomically. Fenced: only the
-- current attempt of a running step may complete it, so a stale or duplicate attempt is a no-op.
-- A task whose totals pass its budget with work left is stopped cleanly: task_failed.
-- Returns 1 when recorded, 2 when it also completed the task, 0 when fenced out, 3 when it
-- stopped the task on its budget.
local task_id, sid, attempt = ARGV[2], ARGV[3], ARGV[4]
local tk = k_task(task_id)
local f = redis.call('HMGET', tk, sid .. '|state', sid .. '|attempt', sid .. '|agent',
                     sid .. '|sink', sid .. '|dependents', sid .. '|error', 'state', 'n_done',
                     'n_steps', 'cost_units', 'tokens_in', 'tokens_out', 'created_ms', 'sinks')
if f[1] ~= 'running' or f[2] ~= attempt then return 0 end
local agent, sink, dependents, task_state = f[3], f[4] == '1', f[5], f[7]
-- An entry that carried only this step is acknowledged in the same atomic unit as its result:
-- one round trip less per step, and still never before the result is recorded.
if ARGV[15] and ARGV[15] ~= '' then redis.call('XACK', k_agent(agent), agent, ARGV[15]) end
local ts = now_ms()
local run_ms, cost = tonumber(ARGV[8]), tonumber(ARGV[9])
local tin, tout, ttl = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local max_tokens, max_cost = tonumber(ARGV[13]) or 0, tonumber(ARGV[14]) or 0
local done = tonumber(f[8]) + 1
local total_cost = tonumber(f[10]) + cost
local total_in, total_out = tonumber(f[11]) + tin, tonumber(f[12]) + tout
redis.call('HSET', k_results(task_id), sid, ARGV[5])
if f[6] then redis.call('HDEL', tk, sid .. '|error') end
local w = {sid .. '|state', 'completed', sid .. '|finished_ms', ts, sid .. '|run_ms', run_ms,
           sid .. '|cost', cost, sid .. '|tin', tin, sid .. '|tout', tout, 'n_done', done,
           'cost_units', total_cost, 'tokens_in', total_in, 'tokens_out', total_out}
if sink then put(w, sid .. '|text', ARGV[7]) end
emit(task_id, {type = 'step_completed', step_id = sid, agent = agent, attempt = tonumber(attempt),
               summary = ARGV[6], run_ms = run_ms, cost_units = cost}, ts)
if task_state ~= 'running' then
  flush(tk, w)
  return 1
end
local over = nil
if max_tokens > 0 and total_in + total_out >= max_tokens then
  over = 'token budget exhausted: ' .. (total_in + total_out) .. ' of ' .. max_tokens .. ' tokens'
elseif max_cost > 0 and total_cost >= max_cost then
  over = 'cost budget exhausted: ' .. total_cost .. ' of ' .. max_cost .. ' cost units'
end
if over and done < tonumber(f[9]) then
  put(w, 'error', over)
  flush(tk, w)
  close_task(task_id, tk, 'failed', ts, ttl, {type = 'task_failed', step_id = sid, error = over,
             budget = true})
  return 3
end
local deps = split(dependents, ',')
if #deps > 0 then
  local names = {}
  for i, dep in ipairs(deps) do names[i] = dep .. '|deps_left' end
  local left = redis.call('HMGET', tk, unpack(names))
  local ready = {}
  for i, dep in ipairs(deps) do
    local n = tonumber(left[i]) - 1
    put(w, dep .. '|deps_left', n)
    if n == 0 then ready[#ready + 1] = dep end
  end
  enqueue(task_id, tk, ready, ts, w)
end
if done < tonumber(f[9]) then
  flush(tk, w)
  return 1
end
-- The task is complete: its output is the text of its sink steps, in plan order.
local texts = {}
for _, s in ipairs(split(f[14], ',')) do
  texts[#texts + 1] = (s == sid) and ARGV[7] or (sget(tk, s, 'text') or '')
end
local output = table.concat(texts, '\n\n')
local latency = ts - tonumber(f[13])
put(w, 'state', 'completed')
put(w, 'finished_ms', ts)
put(w, 'latency_ms', latency)
put(w, 'output', output)
flush(tk, w)
emit(task_id, {type = 'task_completed', latency_ms = latency, cost_units = total_cost,
               tokens_in = total_in, tokens_out = total_out, output = output}, ts)
expire_task(task_id, ttl)
return 2
