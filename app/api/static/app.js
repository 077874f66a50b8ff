// The page: routes (#/, #/task/<id>, #/dlq), the task view, the forms. Each task view is built
// from the task's event log only (live or replayed), plus GET /tasks/{id} for its input and
// GET /metrics/{id} once it has ended.

import { api } from './api.js';
import { loadDlq, redriveAll, refreshDepth } from './dlq.js';
import { $, clear, fmtCost, fmtMs, h, show } from './dom.js';
import { PlanGraph } from './graph.js';
import { TERMINAL, applyEvent, counts, newTask } from './model.js';
import { loadRecent } from './recent.js';
import { collectDocuments, renderMarkdown, renderReportPlaceholder, renderSources } from './report.js';
import { TaskStream } from './stream.js';
import { renderMetricsTable, renderTimeline } from './timeline.js';

const TASK_ROUTE = /^#\/task\/([A-Za-z0-9_-]{1,64})$/;
const MAX_LOG_ITEMS = 1000;

const ui = {
  task: null,
  stream: null,
  graph: new PlanGraph($('graph'), selectStep),
  cards: new Map(),
  selected: null,
  metrics: null,
  renderedOutput: null,
  offsetMs: null, // local clock minus server clock, smallest seen (network delay is positive)
  ticker: null,
  pending: false,
};

// --- routing -------------------------------------------------------------------------------

function view(name) {
  for (const v of ['home', 'task', 'dlq']) show($(`view-${v}`), v === name);
  $('nav-dlq').classList.toggle('active', name === 'dlq');
  $('nav-tasks').classList.toggle('active', name !== 'dlq');
}

function route() {
  const match = TASK_ROUTE.exec(location.hash);
  if (match) {
    if (ui.task?.id !== match[1]) openTask(match[1]);
    return;
  }
  stopTask();
  if (location.hash === '#/dlq') {
    view('dlq');
    loadDlq();
  } else {
    view('home');
  }
}

// --- task view -----------------------------------------------------------------------------

function stopTask() {
  if (ui.stream) ui.stream.stop();
  ui.stream = null;
  clearInterval(ui.ticker);
  ui.ticker = null;
  ui.task = null;
  setConn('idle');
}

function resetTaskView(id) {
  $('task-id').textContent = id;
  $('task-input-text').textContent = '';
  message('');
  ui.graph.reset();
  clear($('steps'));
  ui.cards.clear();
  clear($('timeline'));
  renderMetricsTable($('metrics-table'), null);
  renderReportPlaceholder($('report'), 'The report appears when the task completes.');
  show($('sources-block'), false);
  clear($('event-log'));
  $('event-count').textContent = '0';
}

async function openTask(id) {
  stopTask();
  ui.task = newTask(id);
  Object.assign(ui, { selected: null, metrics: null, renderedOutput: null, offsetMs: null });
  view('task');
  resetTaskView(id);
  render();
  const r = await api(`/tasks/${encodeURIComponent(id)}`);
  if (ui.task?.id !== id) return; // the user went elsewhere meanwhile
  if (r.status === 404) {
    ui.task.state = 'unknown';
    message('No such task: the id is unknown, or the task finished long enough ago to expire.', 'error');
    render();
    return;
  }
  if (r.ok) ui.task.userInput = String(r.data.user_input ?? '');
  markCurrent(id);
  ui.stream = new TaskStream(id, { onEvent, onStatus: setConn, onEnd: () => onEnd(id), onGone });
  ui.stream.start();
  ui.ticker = setInterval(() => ui.task?.state === 'running' && schedule(), 250);
}

function onEvent(id, data) {
  const task = ui.task;
  if (!task) return;
  if (typeof data.ts === 'number') {
    const offset = Date.now() - data.ts;
    ui.offsetMs = ui.offsetMs === null ? offset : Math.min(ui.offsetMs, offset);
  }
  applyEvent(task, data);
  logEvent(id, data);
  if (TERMINAL.has(data.type)) {
    ui.metrics = null;
    loadRecent(task.id);
  }
  schedule();
}

async function onEnd(id) {
  const [metrics, detail] = await Promise.all([
    api(`/metrics/${encodeURIComponent(id)}`),
    api(`/tasks/${encodeURIComponent(id)}`),
  ]);
  if (ui.task?.id !== id) return;
  if (metrics.ok) ui.metrics = metrics.data;
  renderMetricsTable($('metrics-table'), ui.metrics);
  const docs = detail.ok ? collectDocuments(detail.data) : [];
  renderSources($('sources'), docs);
  show($('sources-block'), docs.length > 0);
  if (detail.ok && !ui.task.output && detail.data.output) ui.task.output = detail.data.output;
  refreshDepth();
  schedule();
}

function onGone() {
  message('This task is no longer known to the API (it expired).', 'error');
}

function logEvent(id, d) {
  const list = $('event-log');
  const step = d.step_id ? ` ${d.step_id}${d.attempt > 1 ? ` #${d.attempt}` : ''}` : '';
  list.append(h('li', { dataset: { id, type: d.type } }, h('code', { text: id }), ` ${d.type}${step}`));
  while (list.childElementCount > MAX_LOG_ITEMS) list.firstElementChild.remove();
  $('event-count').textContent = String(ui.task.events);
}

function schedule() {
  if (ui.pending) return;
  ui.pending = true;
  setTimeout(() => {
    ui.pending = false;
    render();
  }, 30);
}

function serverNow() {
  return Date.now() - (ui.offsetMs ?? 0);
}

function render() {
  const task = ui.task;
  if (!task) return;
  const now = serverNow();
  renderHead(task, now);
  ui.graph.update(task, now, ui.selected);
  renderSteps(task, now);
  renderTimeline($('timeline'), task, now);
  renderReport(task);
  $('planner').textContent = task.planner ? `planner: ${task.planner}` : '';
}

function renderHead(task, now) {
  const badge = $('task-state');
  badge.textContent = task.state;
  badge.className = `badge st-${task.state}`;
  $('task-input-text').textContent = task.userInput;
  show($('cancel-btn'), task.state === 'running' && task.plan !== null);
  const c = counts(task);
  const m = ui.metrics;
  const elapsed = task.createdTs === null ? null : (task.endTs ?? now) - task.createdTs;
  const items = [
    ['steps', `${c.completed} / ${c.total} done`],
    [task.state === 'running' ? 'elapsed' : 'latency', fmtMs(m?.latency_ms ?? task.totals.latency_ms ?? elapsed)],
    ['cost units', fmtCost(m?.cost_units ?? task.totals.cost_units)],
    ['tokens in / out', `${m?.tokens_in ?? task.totals.tokens_in} / ${m?.tokens_out ?? task.totals.tokens_out}`],
  ];
  if (m) {
    items.push(['queue wait (sum)', fmtMs(m.queue_wait_ms_total)], ['run time (sum)', fmtMs(m.run_ms_total)],
      ['attempts / retries', `${m.attempts_total} / ${m.retries_total}`]);
  }
  const dl = clear($('totals'));
  for (const [k, v] of items) dl.append(h('div', { dataset: { k } }, h('dt', { text: k }), h('dd', { text: v })));
}

function stepCard(step) {
  const parts = {
    head: h('div', { class: 'step-head' }),
    instruction: h('p', { class: 'step-instr muted', text: step.instruction }),
    note: h('p', { class: 'step-note' }),
    text: h('pre', { class: 'step-text' }),
  };
  parts.card = h('div', { class: 'step', dataset: { step: step.id } },
    parts.head, parts.instruction, parts.note, parts.text);
  parts.card.addEventListener('click', () => selectStep(step.id));
  return parts;
}

function renderSteps(task, now) {
  const box = $('steps');
  for (const step of task.steps.values()) {
    let parts = ui.cards.get(step.id);
    if (!parts) {
      parts = stepCard(step);
      ui.cards.set(step.id, parts);
      box.append(parts.card);
    }
    parts.card.dataset.state = step.state;
    parts.card.classList.toggle('selected', step.id === ui.selected);
    const run = step.attempts[step.attempts.length - 1];
    const live = step.state === 'running' && run?.startedTs ? fmtMs(now - run.startedTs) : '';
    parts.head.replaceChildren(...[
      h('strong', { text: step.id }), h('span', { class: 'agent', text: step.agent }),
      h('span', { class: `badge st-${step.state}`, text: step.state }),
      step.attempt > 1 ? h('span', { class: 'muted', text: `attempt ${step.attempt}` }) : null,
      h('span', { class: 'muted', text: live || (step.runMs !== null ? `run ${fmtMs(step.runMs)}` : '') }),
    ].filter(Boolean));
    const note = step.error ? `error: ${step.error}` : step.summary ?? '';
    parts.note.textContent = note;
    parts.note.className = step.error ? 'step-note error-text' : 'step-note';
    if (parts.text.textContent !== step.text) parts.text.textContent = step.text;
    show(parts.text, step.text.length > 0);
  }
}

function renderReport(task) {
  if (task.output && ui.renderedOutput !== task.output) {
    ui.renderedOutput = task.output;
    renderMarkdown($('report'), task.output);
  } else if (!task.output && task.state !== 'running' && ui.renderedOutput !== task.state) {
    ui.renderedOutput = task.state;
    renderReportPlaceholder($('report'), task.error ? `No report: ${task.error}` : `No report: the task ${task.state}.`,
      task.state === 'failed' ? 'error-text' : 'muted');
  }
}

function selectStep(id) {
  ui.selected = ui.selected === id ? null : id;
  render();
  const parts = ui.cards.get(id);
  if (parts && ui.selected) parts.card.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

function message(text, kind = 'info') {
  const el = $('task-message');
  el.textContent = text;
  el.dataset.kind = kind;
  show(el, Boolean(text));
}

function setConn(state) {
  const el = $('conn');
  el.dataset.state = state;
  el.textContent = { idle: 'idle', connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', ended: 'ended' }[state] || state;
}

function markCurrent(id) {
  for (const li of $('recent').children) {
    li.classList.toggle('current', li.querySelector('a')?.dataset.task === id);
  }
}

// --- forms ---------------------------------------------------------------------------------

async function submitTask(ev) {
  ev.preventDefault();
  const button = $('submit-btn');
  const error = $('submit-error');
  show(error, false);
  button.disabled = true;
  const r = await api('/run-task', { method: 'POST', body: { user_input: $('task-input').value } });
  button.disabled = false;
  if (!r.ok) {
    error.textContent = r.message;
    show(error, true);
    return;
  }
  location.hash = `#/task/${r.data.task_id}`;
  loadRecent(r.data.task_id);
}

async function cancelTask() {
  const task = ui.task;
  if (!task) return;
  $('cancel-btn').disabled = true;
  const r = await api(`/tasks/${encodeURIComponent(task.id)}/cancel`, { method: 'POST' });
  $('cancel-btn').disabled = false;
  if (r.ok) message('Cancellation requested.');
  else message(`Could not cancel: ${r.message}`, 'error');
}

function openById(ev) {
  ev.preventDefault();
  const id = $('open-input').value.trim();
  if (/^[A-Za-z0-9_-]{1,64}$/.test(id)) location.hash = `#/task/${id}`;
}

$('submit-form').addEventListener('submit', submitTask);
$('open-form').addEventListener('submit', openById);
$('cancel-btn').addEventListener('click', cancelTask);
$('refresh-tasks').addEventListener('click', () => loadRecent(ui.task?.id));
$('dlq-refresh').addEventListener('click', loadDlq);
$('dlq-redrive-all').addEventListener('click', redriveAll);
$('task-input').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('submit-form').requestSubmit();
});
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (ev) => {
  window.__cspViolations.push(`${ev.violatedDirective} ${ev.blockedURI} ${ev.sourceFile}:${ev.lineNumber}`);
});
window.addEventListener('hashchange', route);
route();
loadRecent(null);
refreshDepth();
