// The page's picture of one task, built only from its event log (the same events, in the same
// order, whether they arrive live or are replayed), plus what GET /tasks/{id} adds (the input).

export const TERMINAL = new Set(['task_completed', 'task_failed', 'task_cancelled']);
export const EVENT_TYPES = [
  'plan_created', 'step_queued', 'step_started', 'step_progress', 'step_completed',
  'step_retrying', 'step_failed', 'task_completed', 'task_failed', 'task_cancelled',
];
const FINISHED = new Set(['completed', 'failed', 'cancelled']);
const MAX_STEP_TEXT = 200000; // characters of streamed text kept per step

export function newTask(id) {
  return {
    id,
    state: 'running',
    userInput: '',
    planner: '',
    plan: null,
    steps: new Map(), // step id -> step, in plan order
    createdTs: null,
    endTs: null,
    output: null,
    error: null,
    totals: { latency_ms: null, cost_units: 0, tokens_in: 0, tokens_out: 0 },
    events: 0,
    lastTs: null,
  };
}

function newStep(spec) {
  return {
    id: spec.id,
    agent: spec.agent,
    instruction: spec.instruction,
    dependsOn: spec.depends_on || [],
    state: 'pending',
    attempt: 1,
    text: '',
    summary: null,
    error: null,
    runMs: null,
    cost: null,
    retryDelayMs: null,
    // One entry per attempt: {attempt, queuedTs, startedTs, endTs, outcome, backoffFromTs}
    attempts: [],
  };
}

function currentAttempt(step, attempt) {
  let run = step.attempts.find((a) => a.attempt === attempt);
  if (!run) {
    run = { attempt, queuedTs: null, startedTs: null, endTs: null, outcome: null, backoffFromTs: null };
    step.attempts.push(run);
  }
  return run;
}

function setPlan(task, d) {
  task.plan = d.plan;
  task.planner = d.planner || '';
  task.createdTs = d.ts;
  task.steps = new Map(d.plan.steps.map((spec) => [spec.id, newStep(spec)]));
}

function stepEvent(task, d) {
  const step = task.steps.get(d.step_id);
  if (!step) return;
  const attempt = d.attempt || step.attempt;
  switch (d.type) {
    case 'step_queued': {
      step.state = 'queued';
      step.attempt = attempt;
      const run = currentAttempt(step, attempt);
      run.queuedTs = d.ts;
      break;
    }
    case 'step_started': {
      step.state = 'running';
      step.attempt = attempt;
      const run = currentAttempt(step, attempt);
      run.startedTs = d.ts;
      if (run.queuedTs === null) run.queuedTs = d.ts;
      if (attempt > 1 && step.text) step.text += `\n— attempt ${attempt} —\n`;
      break;
    }
    case 'step_progress':
      if (step.text.length < MAX_STEP_TEXT) step.text += d.text || '';
      break;
    case 'step_completed': {
      step.state = 'completed';
      const run = currentAttempt(step, attempt);
      run.endTs = d.ts;
      run.outcome = 'completed';
      step.summary = d.summary ?? null;
      step.runMs = d.run_ms ?? null;
      step.cost = d.cost_units ?? null;
      step.error = null;
      break;
    }
    case 'step_retrying': {
      // `attempt` is the next attempt; the one that just ended is attempt - 1.
      const ended = currentAttempt(step, Math.max(1, attempt - 1));
      if (ended.endTs === null) ended.endTs = d.ts;
      ended.outcome = 'retried';
      const next = currentAttempt(step, attempt);
      next.backoffFromTs = d.ts;
      step.state = 'retrying';
      step.attempt = attempt;
      step.error = d.error ?? null;
      step.retryDelayMs = d.delay_ms ?? null;
      break;
    }
    case 'step_failed': {
      const run = currentAttempt(step, attempt);
      if (run.endTs === null) run.endTs = d.ts;
      run.outcome = d.cancelled ? 'cancelled' : 'failed';
      step.state = d.cancelled ? 'cancelled' : 'failed';
      step.error = d.error ?? null;
      break;
    }
    default:
      break;
  }
}

function taskEvent(task, d) {
  task.endTs = d.ts;
  task.totals.latency_ms = d.latency_ms ?? task.totals.latency_ms;
  if (d.type === 'task_completed') {
    task.state = 'completed';
    task.output = d.output ?? null;
    task.error = null;
    task.totals.cost_units = d.cost_units ?? task.totals.cost_units;
    task.totals.tokens_in = d.tokens_in ?? task.totals.tokens_in;
    task.totals.tokens_out = d.tokens_out ?? task.totals.tokens_out;
    return;
  }
  task.state = d.type === 'task_failed' ? 'failed' : 'cancelled';
  task.error = d.error || d.reason || null;
  // The server closes what was still open as cancelled (close_task); mirror it.
  for (const step of task.steps.values()) {
    if (!FINISHED.has(step.state)) step.state = 'cancelled';
  }
}

function stepChange(task, d) {
  if (FINISHED.has(task.state)) {
    // A redriven task resumes after its terminal event: it is running again.
    task.state = 'running';
    task.endTs = null;
    task.error = null;
  }
  stepEvent(task, d);
  if (d.type === 'step_completed' && d.cost_units) {
    task.totals.cost_units = round(task.totals.cost_units + d.cost_units);
  }
}

/** Apply one event (the `data` of an SSE frame) to the task. */
export function applyEvent(task, d) {
  task.events += 1; // events received (the page's event log), not the steps queued by one
  task.lastTs = d.ts ?? task.lastTs;
  if (d.type === 'plan_created') setPlan(task, d);
  else if (TERMINAL.has(d.type)) taskEvent(task, d);
  else stepChange(task, d);
  // plan_created and step_completed list the steps they queued (older logs have a step_queued
  // event for each instead): each item is that event, applied after this one.
  for (const q of d.queued || []) {
    stepChange(task, { ...q, type: 'step_queued', task_id: d.task_id, ts: d.ts });
  }
}

function round(x) {
  return Math.round(x * 1e6) / 1e6;
}

/** Compare two Redis stream ids ("ms-seq"); negative when a < b. */
export function compareIds(a, b) {
  const [am, as = '0'] = String(a).split('-');
  const [bm, bs = '0'] = String(b).split('-');
  const dm = BigInt(am) - BigInt(bm);
  if (dm !== 0n) return dm < 0n ? -1 : 1;
  const ds = BigInt(as) - BigInt(bs);
  return ds === 0n ? 0 : ds < 0n ? -1 : 1;
}

export function counts(task) {
  const out = { total: task.steps.size, completed: 0, running: 0, failed: 0 };
  for (const step of task.steps.values()) {
    if (step.state === 'completed') out.completed += 1;
    if (step.state === 'running') out.running += 1;
    if (step.state === 'failed') out.failed += 1;
  }
  return out;
}
