// A run: its jobs as a graph coloured by status, kept current by the run's
// event stream (pushed, never polled); the selected job's details and live
// log; the run's notes, state and event timeline.

import { api, can, seg } from "./api.js";
import { act, confirmed, start } from "./app.js";
import { drawDag } from "./dag.js";
import {
  badge, byId, chips, empty, fmtDuration, fmtTime, h, jsonBlock, pairs, replace, table, when,
} from "./dom.js";
import { logView } from "./logview.js";
import { sanitizedHtml } from "./md.js";
import { groupLink, placeText, readGroup } from "./groups.js";
import { pauseButton, rescheduleForm, restartForm } from "./runcontrol.js";
import { follow } from "./sse.js";
import { countsBar, progressBar } from "./widgets.js";

const TIMELINE_MAX = 500;
const FINISHED = new Set(["success", "failure", "cancelled", "expired"]);

const runId = decodeURIComponent(location.pathname.split("/").pop());
const base = `/api/runs/${seg(runId)}`;
let run = null;
let dag = null;
let selected = null;
let log = null;
let logShown = null;  // the job and attempt the log view follows
const statuses = new Map();

// ---- the run's head ------------------------------------------------------------------

const RETRYABLE = new Set(["failure", "cancelled", "expired"]);
// The latest moment the run as read knows of: its events up to then are history.
const asOf = (r) => Math.max(r.created_at, r.started_at || 0, r.finished_at || 0, r.paused_at || 0);
const actionsOf = (status) => `${status === "delayed"} ${FINISHED.has(status)} ${RETRYABLE.has(status)}`;

// One of the run's forms (reschedule, restart) open under its head, or none.
// The form is kept, as typed, across redraws of the head (the run's events
// redraw it): only closing it, or a status it no longer fits, drops it.
let openForm = null;
let formNode = null;

function toggle(name, make) {
  return (ev) => {
    openForm = openForm === name ? null : name;
    formNode = openForm === name ? make() : null;
    ev.target.setAttribute("aria-expanded", String(openForm === name));
    replace(byId("run-control"), formNode);
  };
}

function renderHead() {
  const actions = h("div", { class: "actions" });
  if (can("submit") && !FINISHED.has(run.status)) {
    actions.appendChild(h("button", { type: "button", class: "danger", id: "cancel-run", text: "Cancel run",
      on: { click: async (ev) => {
        if (!(await confirmed(`Cancel run #${run.number} of ${run.workflow_name || run.workflow_id}? Its queued and running jobs stop.`))) return;
        await act(ev.target, () => api("POST", `${base}/cancel`));
      } } }));
  }
  if (can("submit") && !FINISHED.has(run.status)) {
    actions.appendChild(pauseButton(run, (now) => { run = now; renderHead(); }));
  }
  if (can("submit") && run.status === "delayed") {
    actions.appendChild(h("button", { type: "button", class: "secondary", id: "reschedule-run", text: "Reschedule…",
      "aria-expanded": String(openForm === "reschedule"),
      on: { click: toggle("reschedule", () => rescheduleForm(run, () => { openForm = null; formNode = null; reload().catch(() => {}); })) } }));
  }
  if (can("submit") && RETRYABLE.has(run.status)) {
    actions.appendChild(h("button", { type: "button", id: "retry-run", text: "Retry failed jobs",
      on: { click: (ev) => act(ev.target, async () => { await api("POST", `${base}/retry`); await reload(); }) } }));
  }
  if (can("submit") && FINISHED.has(run.status)) {
    actions.appendChild(h("button", { type: "button", class: "secondary", id: "restart-run", text: "Restart…",
      "aria-expanded": String(openForm === "restart"), on: { click: toggle("restart", () => restartForm(run)) } }));
  }
  if ((openForm === "reschedule" && run.status !== "delayed") || (openForm === "restart" && !FINISHED.has(run.status))) {
    openForm = null;
    formNode = null;
  }
  const facts = [
    ["Workflow", h("a", { href: `/ui/workflows/${seg(run.workflow_id)}`, text: run.workflow_id })],
    ["Run id", h("code", { text: run.run_id })],
    ["Triggered by", run.triggered_by],
    ["Created", when(run.created_at)],
    ["Started", run.started_at ? fmtTime(run.started_at) : "—"],
    ["Finished", run.finished_at ? fmtTime(run.finished_at) : "—"],
    ["Duration", run.started_at ? fmtDuration((run.finished_at || Date.now()) - run.started_at) : "—"],
    ["Version", h("code", { text: run.version })],
  ];
  if (run.scheduled_at) facts.push(["Scheduled at", h("span", { id: "scheduled-at", text: fmtTime(run.scheduled_at) })]);
  if (run.expires_at) facts.push(["Expires at", h("span", { id: "expires-at", text: fmtTime(run.expires_at) })]);
  if (run.schedule_id) {
    facts.push(["Schedule", h("a", { id: "schedule-link", href: `/ui/schedules?workflow=${encodeURIComponent(run.workflow_id)}`,
      class: "mono", text: run.schedule_id })]);
  }
  if (run.restarted_from) {
    facts.push(["Restarted from", h("a", { id: "restarted-from", href: `/ui/runs/${seg(run.restarted_from)}`, class: "mono",
      text: run.restarted_from })]);
  }
  if (run.concurrency_group) facts.push(["Concurrency group", groupLink(run.concurrency_group, { id: "run-group" })]);
  if (run.waiting_for_group) {
    facts.push(["Waiting for", h("span", { id: "run-waiting" }, "a place in its group ", h("span", { id: "run-place" }))]);
  } else if (run.waiting_for_workflow) {
    facts.push(["Waiting for", h("span", { id: "run-waiting", text: "its workflow to be resumed (paused)" })]);
  }
  if (run.paused) facts.push(["Paused", h("span", { id: "paused-at", text: fmtTime(run.paused_at) })]);
  if (run.parent_run_id) {
    facts.push(["Parent run", h("a", { href: `/ui/runs/${seg(run.parent_run_id)}`, text: run.parent_run_id })]);
  }
  const overrides = run.overrides && Object.keys(run.overrides).length ? run.overrides : null;
  const children = byId("children") || h("div", { id: "children" });  // drawn once, kept across redraws
  replace(byId("run-head"),
    h("h1", {}, `${run.workflow_name || run.workflow_id} #${run.number} `, h("span", { id: "run-status" }, badge(run.status)),
      run.paused ? h("span", { id: "run-paused" }, badge("paused")) : null),
    h("div", { class: "facts-wide" }, facts.map(([k, v]) => h("div", { class: "fact" },
      h("span", { class: "fact-key", text: k }), h("span", { class: "fact-value" }, v)))),
    Object.keys(run.inputs || {}).length ? h("div", {}, h("h3", { text: "Inputs" }), pairs(run.inputs)) : null,
    overrides ? h("div", { id: "overrides" }, h("h3", { text: "Overrides" }), pairs(overrides)) : null,
    Object.keys(run.tags || {}).length ? h("div", {}, h("h3", { text: "Tags" }),
      chips(Object.entries(run.tags).map(([k, v]) => `${k}:${v}`))) : null,
    children,
    actions,
    h("div", { id: "run-control" }, formNode));
  if (run.waiting_for_group) {
    const name = run.waiting_for_group;
    readGroup(name).then((g) => { if (byId("run-place") && run.waiting_for_group === name) byId("run-place").textContent = placeText(g, run.run_id); })
      .catch(() => {});
  }
}

// The run's own facts again (paused, its group), without redrawing its graph.
let headTimer = null;
function refreshHead() {
  clearTimeout(headTimer);
  headTimer = setTimeout(async () => {
    const now = await api("GET", base).catch(() => null);
    if (!now) return;
    run = now;
    renderHead();
  }, 200);
}

function renderCounts() {
  const counts = {};
  for (const s of statuses.values()) counts[s] = (counts[s] || 0) + 1;
  replace(byId("counts"), countsBar(counts, 240), " ",
    Object.entries(counts).map(([s, n]) => h("span", { class: `count st-${s}`, text: `${n} ${s}` })));
}

async function renderChildren() {
  const children = await api("GET", `${base}/children`);
  if (!children.length) return;
  replace(byId("children"), h("h3", { text: "Child runs" }),
    h("ul", {}, children.map((c) => h("li", {}, h("a", { href: `/ui/runs/${seg(c.run_id)}`, text: `${c.workflow_id} #${c.number}` }),
      " ", badge(c.status)))));
}

async function renderNotes() {
  const notes = await api("GET", `${base}/notes`);
  replace(byId("notes"), notes.length ? notes.map((n) => h("div", { class: ["note", `style-${n.style}`] },
    h("div", { class: "note-head muted" }, `${n.context} · ${n.job_id} · `, when(n.at_ms)),
    sanitizedHtml(n.html))) : empty("No notes."));
}

async function renderState() {
  const state = await api("GET", `${base}/state`);
  replace(byId("state"), Object.keys(state).length ? jsonBlock(state) : empty("No state."));
}

// ---- the selected job ------------------------------------------------------------------

function jobActions(job) {
  const out = h("div", { class: "actions" });
  const path = `${base}/jobs/${seg(job.id)}`;
  if (!can("submit")) return out;
  if (job.status === "waiting" && job.waiting_for) {
    out.appendChild(h("button", { type: "button", id: "approve", text: "Approve",
      on: { click: async (ev) => {
        if (!(await confirmed(`Approve ${job.name}? The jobs after it go on.`))) return;
        await act(ev.target, () => api("POST", `${path}/approve`, { body: { payload: { approved_in: "dashboard" } } }));
      } } }));
  }
  if (["queued", "running", "waiting"].includes(job.status)) {
    out.appendChild(h("button", { type: "button", class: "danger", id: "cancel-job", text: "Cancel job",
      on: { click: async (ev) => {
        if (!(await confirmed(`Cancel ${job.name}? The jobs that need it are skipped.`))) return;
        await act(ev.target, () => api("POST", `${path}/cancel`));
      } } }));
  }
  if (FINISHED.has(run.status) && ["failure", "cancelled", "skipped"].includes(job.status)) {
    out.appendChild(h("button", { type: "button", id: "retry-job", text: "Retry job",
      on: { click: (ev) => act(ev.target, async () => { await api("POST", `${path}/retry`); await reload(); }) } }));
  }
  return out;
}

const HELD = {
  paused: "its run is paused",
  workflow_paused: "its run waits for its workflow to be resumed",
  concurrency_group: "its run waits for a place in its concurrency group",
};

function blockedText(b) {
  if (!b) return null;
  if (b.retry_at) return `waiting out a backoff until ${fmtTime(b.retry_at)}`;
  if (b.run_held) return HELD[b.run_held] || `its run is held (${b.run_held})`;
  if (b.concurrency_group) return h("span", {}, "waiting for a place in concurrency group ", groupLink(b.concurrency_group),
    " ", h("span", { id: "job-place" }));
  if (b.paused_labels && b.paused_labels.length) return `label ${b.paused_labels.join(", ")} paused: no worker takes it until resumed`;
  if (b.needs && b.needs.length) return `waiting for ${b.needs.map((n) => `${n.job} (${n.status})`).join(", ")}`;
  if (b.no_worker_with) return `no live worker offers ${b.no_worker_with.join(", ") || "(no labels)"}`;
  return "next in line for a worker";
}

function stepsTable(steps) {
  if (!steps || !steps.length) return null;
  return table(["Step", "Status", "Duration", "Exit", "Progress"], steps.map((s) => h("tr", {},
    h("td", { text: s.name || s.id }), h("td", {}, badge(s.status)), h("td", { text: fmtDuration(s.duration_ms) }),
    h("td", { text: s.exit_code ?? "" }),
    h("td", {}, s.progress_percent !== null && s.progress_percent !== undefined ? progressBar(s.progress_percent) : ""))));
}

async function renderJob(id) {
  const panel = byId("job");
  const path = `${base}/jobs/${seg(id)}`;
  const [job, checkpoints] = await Promise.all([api("GET", path), api("GET", `${path}/checkpoints`)]);
  if (selected !== id) return;
  const facts = [
    ["Status", badge(job.status)],
    ["Attempt", String(job.attempt)],
    ["Worker", job.worker_id || "—"],
    ["Labels", chips(job.required_labels)],
    ["Needs", chips(job.depends_on)],
    ["Started", job.started_at ? fmtTime(job.started_at) : "—"],
    ["Duration", job.duration_secs !== null && job.duration_secs !== undefined ? fmtDuration(job.duration_secs * 1000) : "—"],
  ];
  if (job.waiting_for) facts.push(["Waiting for", `${job.waiting_for} (until ${fmtTime(job.waiting_until)})`]);
  const blocked = blockedText(job.blocked_by);
  if (blocked) facts.push(["Why not running", blocked]);
  const group = job.blocked_by && job.blocked_by.concurrency_group;
  const place = group ? await readGroup(group).catch(() => null) : null;
  if (selected !== id) return;
  if (job.progress !== null && job.progress !== undefined) {
    facts.push(["Progress", h("span", {}, progressBar(job.progress), job.current_step ? ` ${job.current_step}` : "")]);
  }
  if (job.resources) {
    const r = job.resources;
    facts.push(["Resources", `${r.cpu_percent ?? "?"}% cpu, ${r.memory_bytes ?? "?"} bytes (peak ${r.peak_cpu_percent ?? "?"}%, ${r.peak_memory_bytes ?? "?"} bytes)`]);
  }
  const section = (title, body) => (body ? h("div", { class: "job-section" }, h("h3", { text: title }), body) : null);
  const top = [
    h("h2", {}, job.name, " ", h("span", { class: "mono muted", text: job.id })),
    jobActions(job),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)])),
    job.error ? section("Error", h("pre", { class: "error-text", text: job.error })) : null,
  ];
  const bottom = [
    section("Steps", stepsTable(job.steps)),
    Object.keys(job.annotations || {}).length ? section("Annotations", pairs(job.annotations)) : null,
    Object.keys(job.outputs || {}).length ? section("Outputs", pairs(job.outputs)) : null,
    job.result_data !== null && job.result_data !== undefined ? section("Result", jsonBlock(job.result_data)) : null,
    checkpoints.length ? section("Checkpoints", h("ul", {}, checkpoints.map((c) => h("li", {},
      `attempt ${c.attempt}, `, when(c.saved_at_ms), jsonBlock(c.data))))) : null,
    section("Command", h("pre", { class: "command", text: job.command })),
  ];
  // The log keeps following across refreshes; only a new attempt (a new tab) starts it again.
  const key = `${job.id}\u0000${job.attempt}`;
  const showPlace = () => { if (place && byId("job-place")) byId("job-place").textContent = placeText(place, runId, job.id); };
  if (logShown === key && byId("job-top")) {
    replace(byId("job-top"), top);
    replace(byId("job-bottom"), bottom);
    showPlace();
    return;
  }
  const logBox = h("div", { class: "log-box" });
  replace(panel, h("div", { id: "job-top" }, top), h("div", { class: "job-section" }, h("h3", { text: "Log" }), logBox),
    h("div", { id: "job-bottom" }, bottom));
  if (log) log.stop();
  logShown = key;
  showPlace();
  log = logView(logBox, runId, job.id, job.attempts.length ? job.attempts : [{ number: job.attempt }]);
}

function select(id) {
  if (selected === id) return;
  selected = id;
  dag.select(id);
  history.replaceState(null, "", `#job=${encodeURIComponent(id)}`);
  renderJob(id).catch((err) => replace(byId("job"), h("p", { class: "banner error", text: err.message })));
}

// Re-reading the selected job when its own events say it changed: at most
// once per 300 ms, however many arrive.
let refreshTimer = null;
function refreshSelected() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    if (selected) renderJob(selected).catch(() => {});
  }, 300);
}

// ---- the event stream ------------------------------------------------------------

function timelineEntry(e) {
  return h("li", { class: ["event", `type-${e.type}`] },
    h("time", { datetime: new Date(e.at_ms).toISOString(), text: new Date(e.at_ms).toLocaleTimeString() }),
    " ", h("span", { class: "event-type", text: e.type }),
    e.job_id ? h("span", { class: "event-job", text: e.job_id }) : null,
    " ", badge(e.status), e.attempt ? h("span", { class: "muted", text: ` attempt ${e.attempt}` }) : null,
    e.detail ? h("span", { class: "event-detail", text: ` ${e.detail}` }) : null);
}

let pending = [];
let flushing = false;
function onEvent(e) {
  if (e.type === "job" && e.job_id) {
    statuses.set(e.job_id, e.status);
    if (dag && !dag.setStatus(e.job_id, e.status)) scheduleReload();
  } else if (e.type === "run" && e.at_ms < asOf(run)) {
    // The stream starts with the run's history: an event older than the
    // run as the page read it must not set it (its actions, an open form)
    // back to what it was then; the timeline still shows it.
  } else if (e.type === "run") {
    const before = run.status;
    run.status = e.status;
    // Its actions follow its status (a delayed run released, a run finished).
    if (actionsOf(before) !== actionsOf(e.status)) renderHead();
    else replace(byId("run-status"), badge(e.status));
  } else if (e.type === "spawn") {
    scheduleReload();  // new jobs in the graph
  } else if (e.type === "annotate" && e.detail.startsWith("note ")) {
    renderNotes().catch(() => {});
  } else if (e.type === "state") {
    renderState().catch(() => {});
  } else if (e.type === "pause" || e.type === "group") {
    refreshHead();  // paused, resumed, waiting for or let into its group
    if (!e.job_id) refreshSelected();  // the run's hold is every job's
  }
  if (e.job_id && e.job_id === selected) refreshSelected();
  pending.push(e);
  if (!flushing) {
    flushing = true;
    requestAnimationFrame(() => {
      flushing = false;
      const list = byId("timeline");
      const frag = document.createDocumentFragment();
      for (const x of pending.slice(-TIMELINE_MAX)) frag.appendChild(timelineEntry(x));
      pending = [];
      list.appendChild(frag);
      while (list.children.length > TIMELINE_MAX) list.removeChild(list.firstChild);
      renderCounts();
    });
  }
}

let reloadTimer = null;
function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => reload().catch(() => {}), 200);
}

async function reload() {
  run = await api("GET", base);
  for (const j of run.jobs) statuses.set(j.id, j.status);
  renderHead();
  renderCounts();
  dag = drawDag(byId("dag"), run.jobs, select);
  if (selected) {
    dag.select(selected);
    renderJob(selected).catch(() => {});
  }
}

start(async () => {
  await reload();
  const fromHash = () => {
    const wanted = new URLSearchParams(location.hash.slice(1)).get("job");
    if (wanted && statuses.has(wanted)) select(wanted);
  };
  fromHash();
  window.addEventListener("hashchange", fromHash);
  renderNotes().catch(() => {});
  renderState().catch(() => {});
  renderChildren().catch(() => {});
  follow(`${base}/events/stream`, {
    onEvent: (_, e) => onEvent(e),
    onEnd: (final) => {
      run.status = final.status;
      reload().catch(() => {});
    },
    onState: (s) => { document.body.dataset.stream = s; },
  });
});
