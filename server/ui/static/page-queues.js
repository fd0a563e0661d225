// The ready queues: jobs waiting per label set, how long the oldest has
// waited, and which live workers can serve each (none: a red row).

import { api, seg } from "./api.js";
import { act, start } from "./app.js";
import { byId, chips, empty, fmtDuration, h, replace, table } from "./dom.js";

function row(q, now) {
  const starving = q.live_workers === 0;
  return h("tr", { class: starving ? "starving" : null, "data-labels": q.labels.join(",") },
    h("td", {}, q.labels.length ? chips(q.labels) : h("span", { class: "muted", text: "(no labels)" }),
      q.paused ? h("span", { class: "chip warn", text: "paused" }) : null),
    h("td", { class: "num", text: String(q.ready) }),
    h("td", {}, q.oldest ? h("span", {}, fmtDuration(now - q.oldest.enqueued_at_ms), " ",
      h("a", { href: `/ui/runs/${seg(q.oldest.run_id)}#job=${encodeURIComponent(q.oldest.job_id)}`, class: "small",
        text: q.oldest.job_id })) : ""),
    h("td", { class: "num", text: String(q.live_workers) }),
    h("td", { class: "num", text: String(q.free_slots) }),
    h("td", {}, starving ? h("span", { class: "warn-text", text: "no live worker offers these labels" })
      : chips(q.workers.concat(q.live_workers > q.workers.length ? [`+${q.live_workers - q.workers.length} more`] : []))));
}

async function load() {
  const page = await api("GET", "/api/queues");
  const total = page.queues.reduce((s, q) => s + q.ready, 0);
  byId("summary").textContent = `${total} ready jobs in ${page.queues.length} queues`
    + (page.truncated ? " (more label sets than one listing shows)" : "");
  replace(byId("queues"), page.queues.length
    ? table(["Labels", "Ready", "Oldest waiting", "Live workers", "Free slots", "Who can serve it"],
      page.queues.map((q) => row(q, page.now_ms)))
    : empty("Nothing is waiting for a worker."));
}

start(async () => {
  byId("refresh").addEventListener("click", (ev) => act(ev.target, load));
  await load();
});
