// Following an event stream (a run's events, a job's log) by push.
//
// EventSource cannot send an Authorization header, so with auth on each
// connection asks first for a stream ticket (POST /api/stream-tickets),
// good for that one path for a minute, and passes it as ?ticket=. When the
// connection fails (the ticket expired, a server restarted) it is closed
// and reopened with a fresh ticket, resuming after the last event seen
// (?after=), so nothing is lost or shown twice.

import { api, query, session } from "./api.js";

const RETRY_MS = [500, 1000, 2000, 5000, 10000];

export function follow(path, { params = {}, after = null, onEvent, onEnd, onState } = {}) {
  let source = null;
  let lastId = after;
  let stopped = false;
  let failures = 0;
  let timer = null;

  const state = (s, detail) => onState && onState(s, detail);

  async function open() {
    if (stopped) return;
    const q = { ...params };
    if (lastId) q.after = lastId;
    try {
      if (session.auth) q.ticket = (await api("POST", "/api/stream-tickets", { body: { path } })).ticket;
    } catch (err) {
      state("error", err.message);
      if (err.status === 401 || err.status === 403) return;  // the token is gone: no point retrying
      return again();
    }
    if (stopped) return;
    source = new EventSource(path + query(q));
    source.addEventListener("open", () => { failures = 0; state("live"); });
    for (const name of ["event", "log"]) {
      source.addEventListener(name, (ev) => {
        lastId = ev.lastEventId || lastId;
        onEvent(name, JSON.parse(ev.data), ev.lastEventId);
      });
    }
    source.addEventListener("end", (ev) => {
      stop();
      state("ended");
      if (onEnd) onEnd(JSON.parse(ev.data));
    });
    source.addEventListener("error", (ev) => {
      if (ev.data) {  // the server's own `error` event: it said why it stopped
        const err = JSON.parse(ev.data).error || {};
        close();
        state("error", err.message);
        if (err.code === "unauthenticated") {
          stopped = true;
          return;
        }
        return again();
      }
      // A network failure or a refused reconnect: reopen with a fresh ticket.
      close();
      state("reconnecting");
      again();
    });
  }

  function again() {
    if (stopped) return;
    const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
    failures += 1;
    timer = setTimeout(open, wait);
  }

  function close() {
    if (source) source.close();
    source = null;
  }

  function stop() {
    stopped = true;
    clearTimeout(timer);
    close();
  }

  open();
  return { stop, get lastId() { return lastId; } };
}
