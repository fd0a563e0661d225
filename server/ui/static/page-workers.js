// Workers, most recently seen first: labels, status, slots, current jobs,
// version, host, last seen. An admin may remove one that is gone.

import { api, can, seg } from "./api.js";
import { act, confirmed, start } from "./app.js";
import { badge, byId, empty, h, replace, table, when } from "./dom.js";

const PAGE = 1000;
let workers = [];

function matches(w, text) {
  if (!text) return true;
  const hay = [w.worker_id, w.status, w.host || "", w.version || "", ...w.labels].join(" ").toLowerCase();
  return text.toLowerCase().split(/\s+/).every((t) => hay.includes(t));
}

// A label of it that is paused: it takes no job needing one.
function labelChips(w) {
  const paused = new Set(w.paused_labels || []);
  return h("span", { class: "chips" }, w.labels.map((l) => h("span", { class: ["chip", paused.has(l) ? "warn" : null],
    title: paused.has(l) ? "paused: it takes no job needing this label" : null, text: paused.has(l) ? `${l} (paused)` : l })));
}

function row(w, now) {
  const remove = can("admin") && ["offline", "lost"].includes(w.status)
    ? h("button", { type: "button", class: "danger small", "data-remove": w.worker_id, text: "Remove",
      on: { click: async (ev) => {
        if (!(await confirmed(`Remove worker ${w.worker_id}? If it is in fact still running it shows again when next seen.`))) return;
        if (await act(ev.target, () => api("DELETE", `/api/workers/${seg(w.worker_id)}`)) !== null) await load();
      } } })
    : null;
  const slots = w.concurrency ? `${w.free_slots}/${w.concurrency} free` : (w.current_jobs.length ? "busy" : "");
  return h("tr", { "data-worker": w.worker_id },
    h("td", { class: "mono", text: w.worker_id }),
    h("td", {}, badge(w.status), w.exclusive ? h("span", { class: "chip", text: "exclusive" }) : null),
    h("td", {}, labelChips(w)),
    h("td", { text: slots }),
    h("td", {}, w.current_jobs.map((j) => h("div", { class: "mono small" },
      h("a", { href: `/ui/workflows/${seg(j.split("/")[0])}`, text: j })))),
    h("td", { text: w.version || "" }),
    h("td", { text: w.host || "" }),
    h("td", {}, when(w.last_seen_ms, now)),
    h("td", {}, remove));
}

function render() {
  const text = byId("find").value.trim();
  const shown = workers.filter((w) => matches(w, text));
  const now = Date.now();
  const counts = {};
  for (const w of workers) counts[w.status] = (counts[w.status] || 0) + 1;
  byId("summary").textContent = `${workers.length} workers: `
    + Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ");
  replace(byId("workers"), shown.length
    ? table(["Worker", "Status", "Labels", "Slots", "Current jobs", "Version", "Host", "Last seen", ""],
      shown.map((w) => row(w, now)))
    : empty(workers.length ? "No worker matches." : "No workers have registered."));
}

async function load() {
  workers = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await api("GET", "/api/workers", { query: { limit: PAGE, offset } });
    workers.push(...page);
    if (page.length < PAGE || offset + PAGE >= 10 * PAGE) break;  // 10,000 at most
  }
  render();
}

start(async () => {
  const params = new URLSearchParams(location.search);
  byId("find").value = params.get("find") || "";
  byId("find").addEventListener("input", () => {
    const q = new URLSearchParams(location.search);
    if (byId("find").value) q.set("find", byId("find").value); else q.delete("find");
    history.replaceState(null, "", `${location.pathname}${q.toString() ? `?${q}` : ""}`);
    render();
  });
  byId("refresh").addEventListener("click", (ev) => act(ev.target, load));
  await load();
});
