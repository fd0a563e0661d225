// Workflow definitions with their latest run, newest first, a page at a time.

import { api, seg } from "./api.js";
import { start } from "./app.js";
import { badge, byId, empty, h, replace, table, when } from "./dom.js";

const PAGE = 100;

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
  const rows = workflows.map((w) => h("tr", { "data-workflow": w.id },
    h("td", {}, h("a", { href: `/ui/workflows/${seg(w.id)}`, text: w.id })),
    h("td", { text: w.name }),
    h("td", { text: w.kind || "" }),
    h("td", { text: w.trigger }),
    h("td", {}, badge(w.status)),
    h("td", {}, w.latest_run_id
      ? h("a", { href: `/ui/runs/${seg(w.latest_run_id)}`, text: `#${w.latest_run_number}` }) : "—"),
    h("td", { text: String(w.runs) }),
    h("td", { text: String(w.jobs.length) }),
    h("td", {}, when(w.updated_at_ms || w.created_at_ms))));
  const pager = h("div", { class: "pager" });
  if (offset > 0) pager.appendChild(h("a", { class: "button secondary", href: `/ui/workflows?offset=${Math.max(0, offset - PAGE)}`, text: "Previous" }));
  if (workflows.length === PAGE && next > offset) pager.appendChild(h("a", { class: "button secondary", href: `/ui/workflows?offset=${next}`, text: "Next" }));
  replace(box, table(["Id", "Name", "Kind", "Trigger", "Latest run", "#", "Runs", "Jobs", "Updated"], rows), pager);
});
