// The recent-tasks list (GET /tasks): each entry opens the task, which replays from its log.

import { api } from './api.js';
import { $, clear, fmtAgo, h, show } from './dom.js';

export async function loadRecent(currentId) {
  const list = $('recent');
  const note = $('recent-note');
  const r = await api('/tasks?limit=50');
  if (!r.ok) {
    note.textContent = r.status === 0 ? 'API unreachable' : `list unavailable (${r.message})`;
    show(note, true);
    return;
  }
  const tasks = Array.isArray(r.data?.tasks) ? r.data.tasks : [];
  clear(list);
  show(note, tasks.length === 0);
  note.textContent = 'No tasks yet.';
  for (const t of tasks) {
    const input = String(t.user_input ?? '');
    list.append(h('li', { class: t.task_id === currentId ? 'current' : '' },
      h('a', { href: `#/task/${encodeURIComponent(t.task_id)}`, dataset: { task: t.task_id } },
        h('span', { class: `badge st-${t.state}`, text: t.state }),
        h('span', { class: 'recent-input', text: input.length > 90 ? `${input.slice(0, 89)}…` : input }),
        h('span', { class: 'recent-meta muted',
          text: `${t.steps ?? '?'} steps · ${t.created_at_ms ? fmtAgo(t.created_at_ms) : ''}` }))));
  }
}
