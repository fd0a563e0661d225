// Dead letters: jobs that failed for good. Replay (a new attempt, as the
// per-job retry) or dismiss them, one at a time or the selected ones
// together; dismissing asks first.

import { api, can, seg } from "./api.js";
import { act, banner, confirmed, start } from "./app.js";
import { byId, chips, empty, h, replace, table, when } from "./dom.js";

const PAGE = 100;

function filterQuery(params) {
  const q = { limit: PAGE };
  for (const [name, api_name] of [["workflow", "workflow_id"], ["label", "label"], ["error", "error"], ["cursor", "cursor"]]) {
    if ((params.get(name) || "").trim()) q[api_name] = params.get(name).trim();
  }
  return q;
}

function report(outcomes) {
  const by = {};
  for (const o of outcomes) by[o.outcome] = (by[o.outcome] || 0) + 1;
  banner(`Replay: ${Object.entries(by).map(([k, n]) => `${n} ${k}`).join(", ")}`, "info");
}

async function load() {
  const params = new URLSearchParams(location.search);
  const page = await api("GET", "/api/dead-letters", { query: filterQuery(params) });
  const box = byId("dead");
  if (!page.items.length) {
    replace(byId("bulk"));
    replace(box, empty("No dead letters."));
    return;
  }
  const key = (d) => `${d.run_id}:${d.job_id}`;
  const checks = new Map();
  const replay = async (items, button) => {
    const answer = await act(button, () => api("POST", "/api/dead-letters/replay", { body: { items } }));
    if (answer) {
      report(answer.outcomes);
      await load();
    }
  };
  const dismiss = async (items, button) => {
    const text = items.length === 1 ? `Dismiss the dead letter of ${items[0].job_id}? It leaves this list for good.`
      : `Dismiss ${items.length} dead letters? They leave this list for good.`;
    if (!(await confirmed(text))) return;
    for (const d of items) {
      if (await act(button, () => api("DELETE", `/api/dead-letters/${seg(d.run_id)}/${seg(d.job_id)}`)) === null) break;
    }
    await load();
  };
  const rows = page.items.map((d) => {
    const check = h("input", { type: "checkbox", "aria-label": `select ${d.job_id}` });
    checks.set(key(d), { check, item: { run_id: d.run_id, job_id: d.job_id } });
    return h("tr", { "data-dead": key(d) },
      h("td", {}, can("submit") || can("admin") ? check : null),
      h("td", {}, h("a", { href: `/ui/runs/${seg(d.run_id)}#job=${encodeURIComponent(d.job_id)}`, text: d.job_id })),
      h("td", {}, h("a", { href: `/ui/workflows/${seg(d.workflow_id)}`, text: d.workflow_id })),
      h("td", {}, when(d.failed_at_ms)),
      h("td", { text: String(d.attempt) }),
      h("td", {}, chips(d.required_labels)),
      h("td", {}, h("pre", { class: "error-text small", text: d.error })),
      h("td", { class: "actions" },
        can("submit") ? h("button", { type: "button", class: "small", "data-replay": key(d), text: "Replay",
          on: { click: (ev) => replay([{ run_id: d.run_id, job_id: d.job_id }], ev.target) } }) : null,
        can("admin") ? h("button", { type: "button", class: "danger small", "data-dismiss": key(d), text: "Dismiss",
          on: { click: (ev) => dismiss([{ run_id: d.run_id, job_id: d.job_id }], ev.target) } }) : null));
  });
  const chosen = () => [...checks.values()].filter((c) => c.check.checked).map((c) => c.item);
  const bulk = byId("bulk");
  const all = h("input", { type: "checkbox", "aria-label": "select all", on: { change: (ev) => {
    for (const c of checks.values()) c.check.checked = ev.target.checked;
  } } });
  replace(bulk,
    can("submit") || can("admin") ? h("label", {}, all, " all on this page") : null,
    can("submit") ? h("button", { type: "button", id: "replay-selected", text: "Replay selected",
      on: { click: (ev) => { const items = chosen(); if (items.length) replay(items, ev.target); } } }) : null,
    can("admin") ? h("button", { type: "button", class: "danger", id: "dismiss-selected", text: "Dismiss selected",
      on: { click: (ev) => { const items = chosen(); if (items.length) dismiss(items, ev.target); } } }) : null);
  const pager = h("div", { class: "pager" });
  if (page.next_cursor) {
    const next = new URLSearchParams(params);
    next.set("cursor", page.next_cursor);
    pager.appendChild(h("a", { class: "button secondary", href: `/ui/dead-letters?${next}`, text: "Older" }));
  }
  replace(box, table(["", "Job", "Workflow", "Failed", "Attempt", "Labels", "Error", ""], rows), pager);
}

start(async () => {
  const params = new URLSearchParams(location.search);
  const form = byId("filters");
  for (const el of form.elements) if (el.name && params.has(el.name)) el.value = params.get(el.name);
  await load();
});
