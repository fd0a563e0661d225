// Every schedule (`on: schedule:` of stored workflows), oldest first, 100 a
// page: when each fires next, what it last started, paused or not, with
// Pause / Resume. The workflow filter and the page are the URL's.

import { api } from "./api.js";
import { act, start } from "./app.js";
import { byId, empty, h, replace } from "./dom.js";
import { scheduleTable } from "./schedules.js";

const PAGE = 100;
const params = new URLSearchParams(location.search);
const workflow = (params.get("workflow") || "").trim();
const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
let shown = [];

function render() {
  const paused = shown.filter((s) => s.paused).length;
  byId("summary").textContent = `${shown.length} schedules${offset ? ` from #${offset + 1}` : ""}, ${paused} paused`;
  const pager = h("div", { class: "pager" });
  const at = (n) => {
    const q = new URLSearchParams(params);
    if (n) q.set("offset", String(n)); else q.delete("offset");
    return `/ui/schedules${q.toString() ? `?${q}` : ""}`;
  };
  if (offset > 0) pager.appendChild(h("a", { class: "button secondary", href: at(Math.max(0, offset - PAGE)), text: "Previous" }));
  if (shown.length === PAGE) pager.appendChild(h("a", { class: "button secondary", id: "next-page", href: at(offset + PAGE), text: "Next" }));
  replace(byId("schedules"), shown.length
    ? [scheduleTable(shown, { withWorkflow: true, changed: (now) => {
      shown = shown.map((s) => (s.id === now.id ? now : s));
      render();
    } }), pager]
    : empty(workflow ? "This workflow has no schedule." : "No schedules: those of stored workflows (on: schedule:) show here."));
}

async function load() {
  shown = await api("GET", "/api/schedules", { query: { limit: PAGE, offset, workflow_id: workflow || null } });
  render();
}

start(async () => {
  byId("filters").elements.workflow.value = workflow;
  byId("refresh").addEventListener("click", (ev) => act(ev.target, load));
  await load();
});
