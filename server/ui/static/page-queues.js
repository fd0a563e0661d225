// The ready queues: jobs waiting per label set, how long the oldest has
// waited, and which live workers can serve each (none: a red row). Paused
// labels: no worker takes a job needing one (a fleet drained without
// stopping its workers); an admin pauses and resumes them here.

import { api, can, seg } from "./api.js";
import { act, banner, confirmed, start } from "./app.js";
import { byId, chips, empty, fmtDuration, h, replace, table, when } from "./dom.js";

const LABEL = /^[A-Za-z0-9_.:/=+-]{1,64}$/;

async function pause(label, button) {
  if (!(await confirmed(`Pause label ${label}? No worker takes a job needing it until it is resumed;`
    + " running jobs finish."))) return;
  const answer = await act(button, () => api("POST", `/api/labels/${seg(label)}/pause`));
  if (answer) {
    banner(answer.detail, "info");
    await load();
  }
}

async function resume(label, button) {
  const answer = await act(button, () => api("POST", `/api/labels/${seg(label)}/resume`));
  if (answer) {
    banner(answer.detail, "info");
    await load();
  }
}

function labelButton(label, paused) {
  return h("button", { type: "button", class: ["small", paused ? null : "secondary"],
    "data-label-action": paused ? "resume" : "pause", "data-label": label,
    text: `${paused ? "Resume" : "Pause"} ${label}`,
    on: { click: (ev) => (paused ? resume(label, ev.target) : pause(label, ev.target)) } });
}

function row(q, now) {
  const starving = q.live_workers === 0 && !q.paused;
  const held = new Set(q.paused_labels || []);
  return h("tr", { class: [starving ? "starving" : null, q.paused ? "paused" : null], "data-labels": q.labels.join(",") },
    h("td", {}, q.labels.length ? h("span", { class: "chips" }, q.labels.map((l) => h("span", {
      class: ["chip", held.has(l) ? "warn" : null], title: held.has(l) ? "paused" : null, text: l })))
      : h("span", { class: "muted", text: "(no labels)" }),
    q.paused ? h("span", { class: "chip warn queue-paused", text: "paused" }) : null),
    h("td", { class: "num", text: String(q.ready) }),
    h("td", {}, q.oldest ? h("span", {}, fmtDuration(now - q.oldest.enqueued_at_ms), " ",
      h("a", { href: `/ui/runs/${seg(q.oldest.run_id)}#job=${encodeURIComponent(q.oldest.job_id)}`, class: "small",
        text: q.oldest.job_id })) : ""),
    h("td", { class: "num", text: String(q.live_workers) }),
    h("td", { class: "num", text: String(q.free_slots) }),
    h("td", {}, q.paused ? h("span", { class: "warn-text", text: `held: ${[...held].join(", ")} paused` })
      : starving ? h("span", { class: "warn-text", text: "no live worker offers these labels" })
        : chips(q.workers.concat(q.live_workers > q.workers.length ? [`+${q.live_workers - q.workers.length} more`] : []))),
    h("td", { class: "actions-cell" }, can("admin") ? q.labels.map((l) => labelButton(l, held.has(l))) : null));
}

function pausedList(labels) {
  const rows = labels.map((l) => h("tr", { "data-paused-label": l.label },
    h("td", {}, h("span", { class: "chip warn", text: l.label })),
    h("td", {}, when(l.paused_at_ms)),
    h("td", { class: "num", text: String(l.queued) }),
    h("td", {}, can("admin") ? labelButton(l.label, true) : null)));
  const input = h("input", { name: "label", placeholder: "a label", maxlength: 64, size: 20 });
  const form = can("admin") ? h("form", { class: "toolbar", id: "pause-label" }, "Pause a label ", input,
    h("button", { type: "submit", class: "secondary", text: "Pause" })) : null;
  if (form) {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const label = input.value.trim();
      if (!LABEL.test(label)) {
        banner(`'${label}' is not a label: letters, digits and _ . : / = + -, at most 64`, "error");
        return;
      }
      pause(label, form.querySelector("button"));
    });
  }
  return [labels.length ? table(["Label", "Paused", "Jobs held", ""], rows, { class: "paused-labels" })
    : empty("No label is paused."), form];
}

async function load() {
  const [page, paused] = await Promise.all([api("GET", "/api/queues"), api("GET", "/api/paused")]);
  const total = page.queues.reduce((s, q) => s + q.ready, 0);
  byId("summary").textContent = `${total} ready jobs in ${page.queues.length} queues`
    + (paused.labels.length ? `, ${paused.labels.length} labels paused` : "")
    + (page.truncated ? " (more label sets than one listing shows)" : "");
  replace(byId("paused"), pausedList(paused.labels));
  replace(byId("queues"), page.queues.length
    ? table(["Labels", "Ready", "Oldest waiting", "Live workers", "Free slots", "Who can serve it", ""],
      page.queues.map((q) => row(q, page.now_ms)))
    : empty("Nothing is waiting for a worker."));
}

start(async () => {
  byId("refresh").addEventListener("click", (ev) => act(ev.target, load));
  await load();
});
