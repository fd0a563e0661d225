// Workflow definitions with their latest run, newest first, a page at a
// time; beside each, its schedules (when each fires next, paused or not).

import { api, seg } from "./api.js";
import { start } from "./app.js";
import { badge, byId, empty, h, replace, table, when } from "./dom.js";
import { scheduleLines } from "./schedules.js";

const PAGE = 100;

// The schedules of the workflows that have some (each says how many), one
// listing each: a page of 100 workflows asks at most 100 times, most none.
async function schedulesOf(workflows) {
  const withSome = workflows.filter((w) => w.schedules > 0);
  const lists = await Promise.all(withSome.map((w) => api("GET", "/api/schedules", { query: { workflow_id: w.id } })
    .catch(() => [])));  // deleted meanwhile
  return new Map(withSome.map((w, i) => [w.id, lists[i]]));
}

function schedulesCell(cell, schedules) {
  replace(cell, schedules && schedules.length ? scheduleLines(schedules, (now) => {
    schedulesCell(cell, schedules.map((s) => (s.id === now.id ? now : s)));
  }) : "");
}

start(async () => {
  const params = new URLSearchParams(location.search);
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const resp = await api("GET", "/api/workflows", { query: { limit: PAGE, offset }, raw: true });
  const workflows = await resp.json();
  const next = parseInt(resp.headers.get("X-Next-Offset") || "", 10);
  const box = byId("workflows");
  if (!workflows.length) {
    replace(box, empty("No workflows yet: submit one (rota submit FILE) or put one in WORKFLOWS_DIR."));
    return;
  }
  const schedules = await schedulesOf(workflows);
  const rows = workflows.map((w) => {
    const cell = h("td", { class: "schedules-cell" });
    schedulesCell(cell, schedules.get(w.id));
    return h("tr", { "data-workflow": w.id },
      h("td", {}, h("a", { href: `/ui/workflows/${seg(w.id)}`, text: w.id })),
      h("td", { text: w.name }),
      h("td", { text: w.kind || "" }),
      h("td", { text: w.trigger }),
      h("td", {}, badge(w.status), w.paused ? h("span", { class: "chip warn workflow-paused",
        title: w.paused === "skip" ? "new runs are refused" : "new runs wait for it to resume", text: `paused (${w.paused})` }) : null),
      h("td", {}, w.latest_run_id
        ? h("a", { href: `/ui/runs/${seg(w.latest_run_id)}`, text: `#${w.latest_run_number}` }) : "—"),
      h("td", { text: String(w.runs) }),
      h("td", { text: String(w.jobs.length) }),
      cell,
      h("td", {}, when(w.updated_at_ms || w.created_at_ms)));
  });
  const pager = h("div", { class: "pager" });
  if (offset > 0) pager.appendChild(h("a", { class: "button secondary", href: `/ui/workflows?offset=${Math.max(0, offset - PAGE)}`, text: "Previous" }));
  if (workflows.length === PAGE && next > offset) pager.appendChild(h("a", { class: "button secondary", href: `/ui/workflows?offset=${next}`, text: "Next" }));
  replace(box, table(["Id", "Name", "Kind", "Trigger", "Latest run", "#", "Runs", "Jobs", "Schedules", "Updated"], rows), pager);
});
