// Concurrency groups in use, most recently entered first, 100 a page: each
// one's limit, the runs and jobs holding a place, and those waiting, in
// the order they go (100 of each at most). ?group= shows one.

import { api } from "./api.js";
import { act, start } from "./app.js";
import { byId, empty, h, replace, table, when } from "./dom.js";
import { memberLink } from "./groups.js";

const PAGE = 100;
const params = new URLSearchParams(location.search);
const wanted = (params.get("group") || "").trim();

function row(g) {
  return h("tr", { "data-group": g.group },
    h("td", {}, h("span", { class: "group-name", text: g.group })),
    h("td", { text: g.per_secs ? `${g.limit} per ${g.per_secs}s` : String(g.limit) }),
    h("td", { class: "num", text: String(g.running.length) }),
    h("td", {}, h("ul", { class: "members running" }, g.running.map((m) => h("li", {}, memberLink(m), " ",
      m.since_ms ? h("span", { class: "muted small" }, "since ", when(m.since_ms)) : null)))),
    h("td", { class: "num", text: String(g.waiting.length) }),
    h("td", {}, h("ol", { class: "members waiting" }, g.waiting.map((m) => h("li", {}, memberLink(m))))));
}

async function load() {
  const q = { limit: PAGE, group: wanted || null, cursor: params.get("cursor") || null };
  const page = await api("GET", "/api/concurrency-groups", { query: q });
  const running = page.groups.reduce((n, g) => n + g.running.length, 0);
  const waiting = page.groups.reduce((n, g) => n + g.waiting.length, 0);
  byId("summary").textContent = `${page.groups.length} groups in use: ${running} running, ${waiting} waiting`;
  const pager = h("div", { class: "pager" });
  if (page.next_cursor) {
    const next = new URLSearchParams(params);
    next.set("cursor", page.next_cursor);
    pager.appendChild(h("a", { class: "button secondary", id: "next-page", href: `/ui/groups?${next}`, text: "Older" }));
  }
  replace(byId("groups"), page.groups.length
    ? [table(["Group", "Limit", "Running", "Holding a place", "Waiting", "Waiting, in order"], page.groups.map(row),
      { class: "groups" }), pager]
    : empty(wanted ? "Nobody holds or waits for a place in this group." : "No concurrency group is in use."));
}

start(async () => {
  byId("filters").elements.group.value = wanted;
  byId("refresh").addEventListener("click", (ev) => act(ev.target, load));
  await load();
});
