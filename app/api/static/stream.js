// Following a task's event log over SSE, across API restarts and pod drains.
//
// EventSource reconnects by itself after a cut (drain, restart, network) and sends the id of the
// last event it saw as Last-Event-ID, so the server resumes exactly after it. We only step in
// when the browser has given up (readyState CLOSED: a non-200 answer such as a 502 from a proxy
// while no pod is ready): then we open a new EventSource with ?after=<last id>, with backoff.
//
// On the terminal event we close the EventSource (otherwise it would reconnect), then ask once
// more from the last id with fetch: 204 means nothing follows, the task is over; 200 means it
// went on (a dead-lettered step was redriven), so we follow again.
//
// Every received event id is pushed to window.__events (before de-duplication), so a test can
// check that nothing was missed or repeated; duplicates, should any arrive, are counted in
// window.__duplicates and not applied.

import { EVENT_TYPES, TERMINAL, compareIds } from './model.js';

const MAX_BACKOFF_MS = 10000;

export class TaskStream {
  /**
   * @param {string} taskId
   * @param {{onEvent: Function, onStatus: Function, onEnd: Function, onGone: Function}} handlers
   */
  constructor(taskId, handlers) {
    this.taskId = taskId;
    this.handlers = handlers;
    this.lastId = null;
    this.es = null;
    this.stopped = false;
    this.failures = 0;
    this.timer = null;
    window.__events = [];
    window.__duplicates = 0;
  }

  url() {
    const base = `/stream/${encodeURIComponent(this.taskId)}`;
    return this.lastId ? `${base}?after=${encodeURIComponent(this.lastId)}` : base;
  }

  start() {
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.closeSource();
  }

  closeSource() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }

  open() {
    if (this.stopped) return;
    this.closeSource();
    this.handlers.onStatus(this.lastId ? 'reconnecting' : 'connecting');
    const es = new EventSource(this.url());
    this.es = es;
    es.onopen = () => {
      this.failures = 0;
      this.handlers.onStatus('live');
    };
    const receive = (message) => this.receive(es, message);
    for (const type of EVENT_TYPES) es.addEventListener(type, receive);
    es.onerror = () => {
      if (this.stopped || this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        this.es = null;
        this.retryLater();
      } else {
        this.handlers.onStatus('reconnecting'); // the browser retries with Last-Event-ID
      }
    };
  }

  receive(es, message) {
    if (this.es !== es) return;
    const id = message.lastEventId;
    window.__events.push(id);
    if (this.lastId !== null && compareIds(id, this.lastId) <= 0) {
      window.__duplicates += 1;
      return;
    }
    this.lastId = id;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    this.handlers.onEvent(id, data);
    if (TERMINAL.has(data.type)) {
      this.closeSource();
      this.checkEnd();
    }
  }

  /** After a terminal event: does anything follow it? */
  async checkEnd() {
    const controller = new AbortController();
    let status;
    try {
      const resp = await fetch(this.url(), { signal: controller.signal, cache: 'no-store' });
      status = resp.status;
    } catch {
      status = 0;
    } finally {
      controller.abort();
    }
    if (this.stopped) return;
    if (status === 204) {
      this.handlers.onStatus('ended');
      this.handlers.onEnd();
    } else if (status === 200) {
      this.open(); // the task went on (redrive): follow it again
    } else if (status === 404) {
      this.handlers.onStatus('ended');
      this.handlers.onEnd();
    } else {
      this.retryLater(() => this.checkEnd());
    }
  }

  retryLater(next) {
    if (this.stopped) return;
    this.handlers.onStatus('reconnecting');
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.failures);
    this.failures += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => (next ? next() : this.reopen()), delay);
  }

  /** The browser gave up: find out why before opening again. */
  async reopen() {
    let status;
    try {
      status = (await fetch(`/tasks/${encodeURIComponent(this.taskId)}`, { cache: 'no-store' })).status;
    } catch {
      status = 0;
    }
    if (this.stopped) return;
    if (status === 404) {
      this.handlers.onStatus('ended');
      this.handlers.onGone();
    } else if (status === 200) {
      this.open();
    } else {
      this.retryLater();
    }
  }
}
