// Per-step latency as a Gantt chart (queue wait, run, retry backoff per attempt, from the
// event timestamps) and the per-step metrics table (from GET /metrics/{id}).

import { clear, fmtCost, fmtMs, h, s } from './dom.js';

const W = 860;
const LABEL_W = 130;
const ROW_H = 24;
const AXIS_H = 22;

export function renderTimeline(container, task, nowTs) {
  clear(container);
  if (!task.plan || task.createdTs === null) return;
  const t0 = task.createdTs;
  const t1 = task.endTs ?? Math.max(nowTs, task.lastTs ?? t0);
  const span = Math.max(t1 - t0, 1);
  const chartW = W - LABEL_W - 16;
  const x = (ts) => LABEL_W + (Math.min(Math.max(ts, t0), t1) - t0) / span * chartW;
  const steps = [...task.steps.values()];
  const height = AXIS_H + steps.length * ROW_H + 6;
  const svg = s('svg', { class: 'gantt', viewBox: `0 0 ${W} ${height}`, role: 'img' });
  axis(svg, t0, span, chartW, height);
  steps.forEach((step, i) => {
    const y = AXIS_H + i * ROW_H;
    svg.append(s('text', { x: LABEL_W - 8, y: y + 16, class: 'gantt-label', 'text-anchor': 'end', text: step.id }));
    for (const run of step.attempts) {
      for (const seg of segments(run, task, nowTs)) {
        const x0 = x(seg.from);
        const w = Math.max(1.5, x(seg.to) - x0);
        svg.append(s('rect', {
          x: x0, y: y + 5, width: w, height: ROW_H - 10, rx: 2, class: seg.cls,
          dataset: { step: step.id, attempt: run.attempt, kind: seg.kind },
        }, s('title', { text: `${step.id} attempt ${run.attempt}: ${seg.kind} ${fmtMs(seg.to - seg.from)}` })));
      }
    }
  });
  container.append(svg);
}

function segments(run, task, nowTs) {
  const open = task.endTs ?? nowTs;
  const out = [];
  if (run.backoffFromTs !== null) {
    out.push({ kind: 'backoff', cls: 'seg-backoff', from: run.backoffFromTs, to: run.queuedTs ?? run.startedTs ?? open });
  }
  if (run.queuedTs !== null) {
    out.push({ kind: 'queue wait', cls: 'seg-queue', from: run.queuedTs, to: run.startedTs ?? run.endTs ?? open });
  }
  if (run.startedTs !== null) {
    const outcome = run.outcome ? ` out-${run.outcome}` : ' out-running';
    out.push({ kind: 'run', cls: `seg-run${outcome}`, from: run.startedTs, to: run.endTs ?? open });
  }
  return out;
}

function axis(svg, t0, span, chartW, height) {
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  for (let t = 0; t <= span + 1e-9; t += step) {
    const xx = LABEL_W + (t / span) * chartW;
    svg.append(s('line', { x1: xx, x2: xx, y1: AXIS_H - 4, y2: height, class: 'gantt-grid' }));
    svg.append(s('text', { x: xx, y: AXIS_H - 8, class: 'gantt-tick', 'text-anchor': 'middle', text: fmtMs(t) }));
  }
}

const COLUMNS = ['step', 'agent', 'state', 'attempts', 'queue wait', 'run', 'cost units', 'tokens in/out'];

export function renderMetricsTable(table, metrics) {
  clear(table);
  if (!metrics) {
    table.hidden = true;
    return;
  }
  table.append(h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { text: c })))));
  const body = h('tbody');
  for (const m of metrics.steps) {
    body.append(h('tr', { dataset: { step: m.step_id } },
      h('td', { text: m.step_id }), h('td', { text: m.agent }),
      h('td', {}, h('span', { class: `badge st-${m.state}`, text: m.state })),
      h('td', { class: 'num', text: m.attempts }), h('td', { class: 'num', text: fmtMs(m.queue_wait_ms) }),
      h('td', { class: 'num', text: fmtMs(m.run_ms) }), h('td', { class: 'num', text: fmtCost(m.cost_units) }),
      h('td', { class: 'num', text: `${m.tokens_in} / ${m.tokens_out}` })));
  }
  table.append(body);
  table.append(h('tfoot', {}, h('tr', {},
    h('th', { text: 'task', colspan: 3 }),
    h('td', { class: 'num', text: metrics.attempts_total }),
    h('td', { class: 'num', text: fmtMs(metrics.queue_wait_ms_total) }),
    h('td', { class: 'num', text: fmtMs(metrics.run_ms_total) }),
    h('td', { class: 'num', text: fmtCost(metrics.cost_units) }),
    h('td', { class: 'num', text: `${metrics.tokens_in} / ${metrics.tokens_out}` }))));
  table.hidden = false;
}
