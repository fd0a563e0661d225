// What an operator does to a run besides cancelling and retrying it: hold
// it (pause, resume), move a delayed run's start (reschedule), and start it
// again as a new run with overrides (restart). Reschedule and restart are
// small forms under the run's head; the server's refusals show beside the
// field they name.

import { api, seg } from "./api.js";
import { act, banner, describe } from "./app.js";
import { fmtTime, h } from "./dom.js";
import { clearErrors, field, setError, showRefusal, whenFields } from "./forms.js";

// Pause (its queued jobs go to no worker; running ones finish) or Resume.
export function pauseButton(run, after) {
  const verb = run.paused ? "resume" : "pause";
  return h("button", { type: "button", class: "secondary", id: `${verb}-run`, text: run.paused ? "Resume run" : "Pause run",
    title: run.paused ? "its held jobs are queued again" : "its queued jobs go to no worker until it resumes; running jobs finish",
    on: { click: async (ev) => {
      const answer = await act(ev.target, () => api("POST", `/api/runs/${seg(run.run_id)}/${verb}`));
      if (answer && answer !== true) {
        banner(answer.detail, "info");
        after(answer.run);
      }
    } } });
}

async function submitted(form, call) {
  const button = form.querySelector("[type=submit]");
  button.disabled = true;
  try {
    return await call();
  } catch (err) {
    if (!showRefusal(form, err)) banner(describe(err), "error");
    return null;
  } finally {
    button.disabled = false;
  }
}

// A delayed run's new start: a time, a delay, or now.
export function rescheduleForm(run, done) {
  const form = h("form", { class: "control-form", id: "reschedule-form", novalidate: true });
  const later = whenFields(form, { legend: `Starts ${fmtTime(run.scheduled_at)}; move it to` });
  const send = (body) => submitted(form, () => api("POST", `/api/runs/${seg(run.run_id)}/reschedule`, { body }));
  form.append(later.nodes, h("div", { class: "actions" },
    h("button", { type: "submit", id: "reschedule-submit", text: "Reschedule" }),
    h("button", { type: "button", class: "secondary", id: "start-now", text: "Start now",
      on: { click: async () => { if (await send({ delay: 0 })) done(); } } })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const timing = later.read();
    if (timing === null) return;
    if (!timing.scheduled_at && !timing.delay) {
      setError(form, "scheduled_at", "give a start time or a delay (or Start now)");
      return;
    }
    if (await send(timing)) done();
  });
  return form;
}

const LABELS = /^[A-Za-z0-9_.:/=+-]{1,64}$/;

function labelList(form, name, text) {
  const labels = text.split(/[\s,]+/).filter(Boolean);
  const bad = labels.find((l) => !LABELS.test(l));
  if (bad !== undefined) {
    setError(form, name, `'${bad}' is not a label: letters, digits and _ . : / = + -, at most 64`);
    return undefined;
  }
  return labels.length ? labels : null;
}

function whole(form, name, text, lo, hi) {
  if (!text.trim()) return null;
  const n = Number(text.trim());
  if (!Number.isInteger(n) || n < lo || n > hi) {
    setError(form, name, `must be a whole number from ${lo} to ${hi}`);
    return undefined;
  }
  return n;
}

// A new run of this run's definition version, with its inputs and tags;
// these overrides merge over the run's own (Strait's /restart).
export function restartForm(run) {
  const form = h("form", { class: "control-form", id: "restart-form", novalidate: true });
  const old = run.overrides || {};
  const input = (name, attrs) => h("input", { name, ...attrs });
  const labels = input("labels", { placeholder: (old.labels || []).join(" ") || null, size: 30 });
  const addLabels = input("add_labels", { placeholder: (old.add_labels || []).join(" ") || null, size: 30 });
  const attempts = input("max_attempts", { inputmode: "numeric", size: 6, placeholder: old.max_attempts ?? null });
  const timeout = input("timeout_secs", { inputmode: "numeric", size: 8, placeholder: old.timeout_secs ?? null });
  const priority = input("priority", { inputmode: "numeric", size: 6, placeholder: old.priority ?? null });
  const later = whenFields(form);
  form.append(
    h("p", { class: "muted", text: "A new run of this run's definition version with its inputs and tags. Empty fields keep"
      + " this run's overrides (shown greyed), if it had any." }),
    h("div", { class: "field-grid" },
      field("Labels (instead of each job's)", labels, { name: "overrides.labels", help: "separated by spaces" }),
      field("Add labels", addLabels, { name: "overrides.add_labels", help: "to each job's" }),
      field("Max attempts", attempts, { name: "overrides.max_attempts", help: "1 to 101, the first included" }),
      field("Timeout (seconds)", timeout, { name: "overrides.timeout_secs", help: "1 to 604800" }),
      field("Priority", priority, { name: "overrides.priority", help: "-100 to 100" })),
    later.nodes,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "restart-submit", text: "Restart" })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const overrides = {
      labels: labelList(form, "overrides.labels", labels.value),
      add_labels: labelList(form, "overrides.add_labels", addLabels.value),
      max_attempts: whole(form, "overrides.max_attempts", attempts.value, 1, 101),
      timeout_secs: whole(form, "overrides.timeout_secs", timeout.value, 1, 604800),
      priority: whole(form, "overrides.priority", priority.value, -100, 100),
    };
    const timing = later.read();
    if (timing === null || Object.values(overrides).includes(undefined)) return;
    for (const [k, v] of Object.entries(overrides)) if (v === null) delete overrides[k];
    const body = { ...timing };
    if (Object.keys(overrides).length) body.overrides = overrides;
    const started = await submitted(form, () => api("POST", `/api/runs/${seg(run.run_id)}/restart`, { body }));
    if (started) location.assign(`/ui/runs/${seg(started.run_id)}`);
  });
  return form;
}
