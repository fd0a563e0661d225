// Schedules (`on: schedule:` of stored workflows) as the schedules page, a
// workflow's page and the workflows list show them: the cron and its time
// zone, catch-up and overlap, the next fire time, the last run, paused or
// not, with Pause / Resume for a token that may (submit).

import { api, can, seg } from "./api.js";
import { act } from "./app.js";
import { badge, fmtTime, h, table, when } from "./dom.js";

function nextFire(s, now) {
  if (s.paused) return h("span", { class: "muted", text: "paused" });
  if (!s.next_fire_at) return h("span", { class: "muted", text: "—" });
  const ahead = s.next_fire_at - now;
  return h("time", { datetime: new Date(s.next_fire_at).toISOString(), title: fmtTime(s.next_fire_at),
    text: ahead > 0 ? `${fmtTime(s.next_fire_at)}` : "due now" });
}

function lastRun(s, now) {
  if (!s.last_run_id) return h("span", { class: "muted", text: "never fired" });
  return h("span", {}, h("a", { href: `/ui/runs/${seg(s.last_run_id)}`, class: "mono", text: s.last_run_id.slice(0, 8) }),
    " ", when(s.last_fired_at, now));
}

// Pause or Resume: the answer is the schedule as it is now, handed to
// `changed` (the caller redraws what it shows).
export function scheduleButton(s, changed) {
  if (!can("submit")) return null;
  const verb = s.paused ? "resume" : "pause";
  return h("button", { type: "button", class: ["small", s.paused ? null : "secondary"], "data-schedule-action": verb,
    "data-schedule": s.id, text: s.paused ? "Resume" : "Pause",
    on: { click: async (ev) => {
      const now = await act(ev.target, () => api("POST", `/api/schedules/${seg(s.id)}/${verb}`));
      if (now && now !== true) changed(now);
    } } });
}

function status(s) {
  return s.paused ? h("span", { title: s.paused_at ? `since ${fmtTime(s.paused_at)}` : null }, badge("paused"))
    : badge("active");
}

// The full table (the schedules page, a workflow's page).
export function scheduleTable(schedules, { withWorkflow = false, changed }) {
  const now = Date.now();
  const head = ["Schedule", ...(withWorkflow ? ["Workflow"] : []), "Cron", "Time zone", "Catch-up", "Overlap",
    "Next fire", "Last run", "Runs", "Status", ""];
  const rows = schedules.map((s) => h("tr", { "data-schedule": s.id, class: s.paused ? "paused" : null },
    h("td", { class: "mono", text: s.id }),
    withWorkflow ? h("td", {}, h("a", { href: `/ui/workflows/${seg(s.workflow_id)}`, text: s.workflow_name || s.workflow_id }),
      s.workflow_name && s.workflow_name !== s.workflow_id ? h("div", { class: "mono muted small", text: s.workflow_id }) : null) : null,
    h("td", {}, h("code", { text: s.cron })),
    h("td", { text: s.timezone }),
    h("td", { text: s.catch_up }),
    h("td", { text: s.overlap + (s.ticks_skipped ? ` (${s.ticks_skipped} skipped)` : "") }),
    h("td", { class: "next-fire" }, nextFire(s, now)),
    h("td", {}, lastRun(s, now)),
    h("td", { class: "num", text: String(s.runs_started) }),
    h("td", { class: "schedule-status" }, status(s)),
    h("td", {}, scheduleButton(s, changed))));
  return table(head, rows, { class: "schedules" });
}

// One line per schedule, for the workflows list.
export function scheduleLines(schedules, changed) {
  const now = Date.now();
  return h("div", { class: "schedule-lines" }, schedules.map((s) => h("div", { class: "schedule-line", "data-schedule": s.id },
    h("code", { text: s.cron }), " ", h("span", { class: "muted", text: `${s.timezone} · catch-up ${s.catch_up}` }), " ",
    s.paused ? badge("paused") : h("span", { class: "small" }, "next ", nextFire(s, now)), " ",
    h("span", { class: "small" }, "last ", lastRun(s, now)), " ",
    scheduleButton(s, changed))));
}
