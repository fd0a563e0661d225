// Runs, newest first, a page at a time through the API's cursor (never all
// of them). The filters are the form's GET fields, so a filtered view is a
// URL to bookmark or share.

import { api, seg } from "./api.js";
import { start } from "./app.js";
import { badge, byId, chips, empty, fmtDuration, fmtTime, h, replace, table, when } from "./dom.js";
import { groupLink } from "./groups.js";
import { countsBar } from "./widgets.js";

const PAGE = 50;

// The page's URL query -> GET /api/runs's.
export function runQuery(params) {
  const q = { limit: PAGE };
  const text = (name) => (params.get(name) || "").trim();
  if (text("q")) q.q = text("q");
  if (text("workflow")) q.workflow_id = text("workflow");
  if (text("status")) q.status = text("status");
  if (text("trigger")) q.triggered_by = text("trigger");
  if (text("label")) q.label = text("label");
  const tags = text("tag").split(/\s+/).filter(Boolean);
  if (tags.length) q.tag = tags;
  const ms = (name) => (text(name) ? new Date(text(name)).getTime() : NaN);
  if (!Number.isNaN(ms("after"))) q.created_after = ms("after");
  if (!Number.isNaN(ms("before"))) q.created_before = ms("before");
  if (text("cursor")) q.cursor = text("cursor");
  return q;
}

function fillForm(params) {
  const form = byId("filters");
  for (const el of form.elements) {
    if (el.name && params.has(el.name)) el.value = params.get(el.name);
  }
}

// When a delayed run starts, when an unstarted one gave up, what holds a run.
function statusNote(run) {
  const notes = [];
  if (run.paused) notes.push(h("span", { class: "chip warn", text: "paused" }));
  if (run.status === "delayed" && run.scheduled_at) notes.push(h("span", { class: "status-note", text: `starts ${fmtTime(run.scheduled_at)}` }));
  if (run.status === "expired" && run.expires_at) notes.push(h("span", { class: "status-note", text: `expired ${fmtTime(run.expires_at)}` }));
  if (run.waiting_for_group) notes.push(h("span", { class: "status-note" }, "waiting for group ", groupLink(run.waiting_for_group)));
  if (run.waiting_for_workflow) notes.push(h("span", { class: "status-note", text: "waiting for its paused workflow" }));
  return notes;
}

function row(run, now) {
  const duration = run.started_at ? (run.finished_at || now) - run.started_at : null;
  return h("tr", { "data-run": run.run_id },
    h("td", {}, h("a", { href: `/ui/runs/${seg(run.run_id)}`, class: "mono", text: run.run_id.slice(0, 8) })),
    h("td", {}, h("a", { href: `/ui/workflows/${seg(run.workflow_id)}`, text: run.workflow_name || run.workflow_id }),
      ` #${run.number}`),
    h("td", {}, badge(run.status), statusNote(run)),
    h("td", {}, countsBar(run.job_counts)),
    h("td", { text: run.triggered_by }),
    h("td", {}, chips(Object.entries(run.tags || {}).map(([k, v]) => `${k}:${v}`))),
    h("td", {}, when(run.created_at, now)),
    h("td", { text: fmtDuration(duration) }));
}

start(async () => {
  const params = new URLSearchParams(location.search);
  fillForm(params);
  const box = byId("runs");
  const page = await api("GET", "/api/runs", { query: runQuery(params) });
  const now = Date.now();
  const next = new URLSearchParams(params);
  const nav = h("div", { class: "pager" });
  if (params.get("cursor")) {
    const first = new URLSearchParams(params);
    first.delete("cursor");
    nav.appendChild(h("a", { class: "button secondary", href: `/ui?${first}`, text: "Newest" }));
  }
  if (page.next_cursor) {
    next.set("cursor", page.next_cursor);
    nav.appendChild(h("a", { class: "button secondary", id: "next-page", href: `/ui?${next}`, text: "Older runs" }));
  }
  if (!page.runs.length) {
    replace(box, empty(page.next_cursor ? "None among the runs looked at: look further back." : "No runs match."), nav);
    return;
  }
  replace(box, table(["Run", "Workflow", "Status", "Jobs", "Trigger", "Tags", "Created", "Duration"],
    page.runs.map((r) => row(r, now)), { class: "runs" }), nav);
});
