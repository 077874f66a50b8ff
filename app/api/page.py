"""A minimal live page (the full web UI is a later issue): submit, then watch the events."""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agentic</title>
<style>body{font:14px system-ui;margin:2rem;max-width:60rem}textarea{width:100%}
pre{background:#f4f4f4;padding:.5rem;white-space:pre-wrap}</style></head>
<body><h1>agentic</h1>
<form id="f"><textarea id="q" rows="3">Compare Redis Streams and Kafka for job queues and write
a short recommendation</textarea><button>Run</button></form>
<pre id="log"></pre><pre id="out"></pre>
<script>
const log = document.getElementById('log'), out = document.getElementById('out');
document.getElementById('f').onsubmit = async (e) => {
  e.preventDefault(); log.textContent = ''; out.textContent = '';
  const r = await fetch('/run-task', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({user_input: document.getElementById('q').value})});
  const t = await r.json(); if (!r.ok) { log.textContent = JSON.stringify(t); return; }
  const es = new EventSource('/stream/' + t.task_id);
  const types = ['plan_created','step_queued','step_started','step_progress','step_completed',
    'step_retrying','step_failed','task_completed','task_failed','task_cancelled'];
  for (const ty of types) es.addEventListener(ty, (m) => {
    const d = JSON.parse(m.data);
    log.textContent += ty + (d.step_id ? ' ' + d.step_id : '') + '\\n';
    if (ty.startsWith('task_')) { es.close(); out.textContent = d.output || d.error || ''; }
  });
};
</script></body></html>
"""
