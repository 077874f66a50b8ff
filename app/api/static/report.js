// The report: Markdown from a model or from documents, so untrusted. marked turns it into an
// HTML string (raw HTML in it escaped, see below), which goes nowhere but DOMPurify; DOMPurify returns a DocumentFragment (no string
// ever reaches innerHTML). Tags that could fetch, embed or run anything are dropped, links are
// http(s)/mailto/relative only (DOMPurify's default URI rule) and open in a new tab.

import { clear, h, linkify } from './dom.js';

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['style', 'img', 'svg', 'math', 'iframe', 'frame', 'object', 'embed', 'video',
    'audio', 'picture', 'source', 'form', 'input', 'button', 'textarea', 'select', 'link', 'meta', 'base'],
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction'],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

// Raw HTML inside the Markdown is shown as text, not parsed: a report is prose, and HTML in it
// comes from documents or a model. (This also keeps handler attributes away from DOMPurify's
// parser, where Chrome would report them as CSP violations even though they never run.)
const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
const markdown = new marked.Marked({ gfm: true, breaks: false, async: false });
markdown.use({ renderer: { html: (token) => escapeHtml(token.text) } });

let hooked = false;
function hook() {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A' && node.hasAttribute('href')) {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer nofollow');
    }
  });
}

/** Markdown -> sanitised DOM, appended to `article`. */
export function renderMarkdown(article, text) {
  hook();
  clear(article);
  const html = markdown.parse(String(text));
  article.append(DOMPurify.sanitize(html, PURIFY));
}

export function renderReportPlaceholder(article, text, cls = 'muted') {
  clear(article);
  article.append(h('p', { class: cls, text }));
}

/** The documents the retrieval steps found, from GET /tasks/{id} step results. */
export function collectDocuments(taskPublic) {
  const seen = new Map();
  for (const step of taskPublic?.steps || []) {
    const docs = step.result && Array.isArray(step.result.documents) ? step.result.documents : [];
    for (const doc of docs) {
      if (!doc || typeof doc !== 'object') continue;
      const key = `${doc.doc_id ?? doc.title}|${doc.source ?? ''}`;
      const entry = seen.get(key) || { title: String(doc.title ?? doc.doc_id ?? 'document'),
        source: String(doc.source ?? ''), sections: new Set(), steps: new Set() };
      if (doc.section) entry.sections.add(String(doc.section));
      entry.steps.add(step.id);
      seen.set(key, entry);
    }
  }
  return [...seen.values()];
}

export function renderSources(list, docs) {
  clear(list);
  for (const doc of docs) {
    list.append(h('li', {},
      h('span', { class: 'src-title', text: doc.title }),
      doc.sections.size ? h('span', { class: 'muted', text: ` — ${[...doc.sections].join('; ')}` }) : null,
      doc.source ? h('div', { class: 'src-url' }, linkify(doc.source)) : null,
      h('div', { class: 'muted small', text: `found by ${[...doc.steps].join(', ')}` })));
  }
}
