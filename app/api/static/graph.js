// The plan as a graph: dagre computes the layout once per plan, this module draws it as SVG
// and updates each node's state, attempt and timing in place as events arrive.

import { clear, fmtCost, fmtMs, s } from './dom.js';

const NODE_W = 200;
const NODE_H = 68;
const STATE_LABEL = {
  pending: 'pending',
  queued: 'queued',
  running: 'running',
  retrying: 'retrying',
  completed: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
};

export class PlanGraph {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.plan = null;
    this.nodes = new Map(); // step id -> {g, state, meta, time}
  }

  reset() {
    this.plan = null;
    this.nodes.clear();
    clear(this.container);
  }

  /** Draw the plan (once), then refresh every node from the task. */
  update(task, nowTs, selected) {
    if (!task.plan) return;
    if (this.plan !== task.plan) this.draw(task);
    for (const step of task.steps.values()) this.refresh(step, nowTs, step.id === selected);
  }

  draw(task) {
    this.reset();
    this.plan = task.plan;
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'LR', nodesep: 22, ranksep: 64, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const step of task.steps.values()) g.setNode(step.id, { width: NODE_W, height: NODE_H });
    for (const step of task.steps.values()) {
      for (const dep of step.dependsOn) if (task.steps.has(dep)) g.setEdge(dep, step.id);
    }
    dagre.layout(g);
    const { width, height } = g.graph();
    const svg = s('svg', {
      class: 'dag', viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
      role: 'group', 'aria-label': 'Plan: steps and their dependencies',
    });
    svg.append(s('defs', {}, s('marker', {
      id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: 'auto-start-reverse',
    }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-head' }))));
    for (const e of g.edges()) {
      const pts = g.edge(e).points;
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
      svg.append(s('path', { d, class: 'edge', 'marker-end': 'url(#arrow)', dataset: { from: e.v, to: e.w } }));
    }
    for (const step of task.steps.values()) svg.append(this.node(step, g.node(step.id)));
    svg.style.maxWidth = `${Math.ceil(width * 1.4)}px`; // grow with the card, up to 1.4x
    this.container.append(svg);
  }

  node(step, pos) {
    const x = pos.x - NODE_W / 2;
    const y = pos.y - NODE_H / 2;
    const title = s('title');
    const state = s('text', { x: x + NODE_W - 10, y: y + 20, class: 'node-state', 'text-anchor': 'end' });
    const meta = s('text', { x: x + 12, y: y + 39, class: 'node-meta' });
    const time = s('text', { x: x + 12, y: y + 57, class: 'node-time' });
    const g = s('g', {
      class: 'node', tabindex: 0, role: 'button', dataset: { step: step.id, agent: step.agent },
      onclick: () => this.onSelect(step.id),
      onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') this.onSelect(step.id); },
    },
    title,
    s('rect', { x, y, width: NODE_W, height: NODE_H, rx: 8, class: 'node-box' }),
    s('rect', { x, y, width: 5, height: NODE_H, rx: 2, class: 'node-bar' }),
    s('text', { x: x + 12, y: y + 20, class: 'node-id', text: clip(step.id, 20) }),
    state, meta, time);
    this.nodes.set(step.id, { g, title, state, meta, time });
    return g;
  }

  refresh(step, nowTs, selected) {
    const n = this.nodes.get(step.id);
    if (!n) return;
    n.g.dataset.state = step.state;
    n.g.setAttribute('class', `node st-${step.state}${selected ? ' selected' : ''}`);
    n.state.textContent = STATE_LABEL[step.state] || step.state;
    n.meta.textContent = `${step.agent}${step.attempt > 1 ? ` · attempt ${step.attempt}` : ''}`;
    n.time.textContent = timing(step, nowTs);
    n.title.textContent = `${step.id} (${step.agent}): ${step.instruction}`;
  }
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function timing(step, nowTs) {
  const run = step.attempts[step.attempts.length - 1];
  switch (step.state) {
    case 'queued':
      return run && run.queuedTs ? `waiting ${fmtMs(nowTs - run.queuedTs)}` : 'waiting';
    case 'running':
      return run && run.startedTs ? `running ${fmtMs(nowTs - run.startedTs)}` : 'running';
    case 'retrying':
      return `retry in ${fmtMs(step.retryDelayMs)}`;
    case 'completed':
      return `run ${fmtMs(step.runMs)} · ${fmtCost(step.cost)} cu`;
    case 'failed':
      return clip(step.error || 'failed', 28);
    case 'cancelled':
      return 'cancelled';
    default:
      return step.dependsOn.length ? `after ${clip(step.dependsOn.join(', '), 22)}` : 'waiting';
  }
}
