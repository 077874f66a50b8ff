// DOM helpers. Text only ever reaches the document through textContent or attribute values:
// nothing in this page assigns a string to innerHTML (the CSP's Trusted Types would refuse it).

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key === 'class') el.setAttribute('class', value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) {
      if (typeof value !== 'function') throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else if ((key === 'href' || key === 'src') && !isLocalOrHttp(String(value))) {
      throw new TypeError(`refusing ${key}=${value}`);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function isLocalOrHttp(value) {
  return /^(#|\/(?!\/))/.test(value) || safeUrl(value) !== null;
}

/** An HTML element; string children become text nodes. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function $(id) {
  return document.getElementById(id);
}

export function show(el, visible) {
  el.hidden = !visible;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function fmtCost(units) {
  if (units === null || units === undefined) return '–';
  return Number(units).toFixed(units >= 100 ? 1 : 3);
}

export function fmtAgo(ms, now = Date.now()) {
  const d = Math.max(0, now - ms);
  if (d < 60000) return `${Math.round(d / 1000)} s ago`;
  if (d < 3600000) return `${Math.round(d / 60000)} min ago`;
  if (d < 86400000) return `${Math.round(d / 3600000)} h ago`;
  return new Date(ms).toLocaleString();
}

/** Only http(s) URLs become links; anything else (javascript:, data:, …) stays text. */
export function safeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

const URL_RE = /https?:\/\/[^\s<>"'`)\]]+/g;

/** Text with its http(s) URLs as links (rel=noopener, new tab); the rest as text nodes. */
export function linkify(text) {
  const out = [];
  let last = 0;
  for (const match of String(text).matchAll(URL_RE)) {
    const href = safeUrl(match[0].replace(/[.,;:]+$/, ''));
    if (!href) continue;
    out.push(document.createTextNode(text.slice(last, match.index)));
    const shown = match[0].replace(/[.,;:]+$/, '');
    out.push(h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', text: shown }));
    last = match.index + shown.length;
  }
  out.push(document.createTextNode(String(text).slice(last)));
  return out;
}
