// Dead letters (GET /dlq): steps that failed for good, with their last error; redrive one or all.

import { api } from './api.js';
import { $, clear, fmtAgo, h, show } from './dom.js';

function message(text, kind = 'info') {
  const el = $('dlq-message');
  el.textContent = text;
  el.dataset.kind = kind;
  show(el, Boolean(text));
}

export function setDepth(depth) {
  const pill = $('dlq-depth');
  pill.textContent = String(depth);
  show(pill, depth > 0);
}

export async function refreshDepth() {
  const r = await api('/dlq?limit=1');
  if (r.ok && typeof r.data?.depth === 'number') setDepth(r.data.depth);
}

export async function loadDlq() {
  const table = $('dlq-table');
  const r = await api('/dlq?limit=100');
  clear(table);
  if (!r.ok) {
    message(r.status === 0 ? 'The API is not reachable.' : `Dead letters unavailable: ${r.message}`, 'error');
    return;
  }
  const entries = Array.isArray(r.data?.entries) ? r.data.entries : [];
  setDepth(r.data.depth ?? entries.length);
  $('dlq-count').textContent = `(${r.data.depth ?? entries.length})`;
  $('dlq-redrive-all').disabled = entries.length === 0;
  if (entries.length === 0) {
    table.append(h('tbody', {}, h('tr', {}, h('td', { class: 'muted', text: 'Nothing dead-lettered.' }))));
    return;
  }
  table.append(h('thead', {}, h('tr', {},
    ['when', 'task', 'step', 'agent', 'attempt', 'last error', ''].map((c) => h('th', { text: c })))));
  const body = h('tbody');
  for (const e of entries) body.append(row(e));
  table.append(body);
}

function row(e) {
  const button = h('button', { type: 'button', class: 'redrive', dataset: { entry: e.id }, text: 'Redrive' });
  button.addEventListener('click', () => redrive(e, button));
  const taskCell = e.task_id
    ? h('a', { href: `#/task/${encodeURIComponent(e.task_id)}`, text: String(e.task_id).slice(0, 12) })
    : '–';
  const when = Number(e.ts) || Number(String(e.id).split('-')[0]); // entry ids start with ms
  return h('tr', { dataset: { entry: e.id } },
    h('td', { class: 'nowrap', text: when ? fmtAgo(when) : '' }),
    h('td', {}, taskCell), h('td', { text: e.step_id ?? '–' }), h('td', { text: e.agent ?? '–' }),
    h('td', { class: 'num', text: e.attempt ?? '–' }),
    h('td', { class: 'error-text', text: e.error ?? '' }),
    h('td', {}, button));
}

async function redrive(entry, button) {
  button.disabled = true;
  const r = await api(`/dlq/${encodeURIComponent(entry.id)}/redrive`, { method: 'POST' });
  if (r.ok) {
    message(`Step ${entry.step_id} of task ${entry.task_id} requeued; the task is running again.`);
    await loadDlq();
    const link = h('a', { href: `#/task/${encodeURIComponent(entry.task_id)}`, text: ' Watch it.' });
    $('dlq-message').append(link);
  } else {
    button.disabled = false;
    message(`Could not redrive ${entry.id}: ${r.message}`, 'error');
  }
}

export async function redriveAll() {
  $('dlq-redrive-all').disabled = true;
  const r = await api('/dlq/redrive', { method: 'POST' });
  if (r.ok) {
    const done = r.data?.redriven?.length ?? 0;
    const skipped = r.data?.skipped?.length ?? 0;
    message(`${done} redriven, ${skipped} skipped.`, skipped ? 'error' : 'info');
  } else {
    message(`Redrive failed: ${r.message}`, 'error');
  }
  await loadDlq();
}
