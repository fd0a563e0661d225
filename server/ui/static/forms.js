// The pieces of the dashboard's forms: a labelled field with its help and
// its error line, a refusal of the API shown beside the field it names,
// and the "start at" / "in" pair a delayed run is asked for with.

import { ApiError } from "./api.js";
import { h } from "./dom.js";

// A field: its label, the control, a help line, an error line. `name` is
// what the API calls it in a 422's details.field (inputs.NAME, delay, ...).
export function field(label, control, { name, help, required } = {}) {
  if (name) control.dataset.field = name;
  return h("div", { class: "field", "data-for": name || null },
    h("label", {}, h("span", { class: "field-label" }, label, required ? h("span", { class: "req", title: "required", text: " *" }) : null),
      control),
    help ? h("span", { class: "field-help", text: help }) : null,
    h("span", { class: "field-error", role: "alert", hidden: true }));
}

// The field a refusal names: "inputs.version", "delay"; msgspec says "$.delay".
export function fieldOf(err) {
  const named = err instanceof ApiError && err.details && err.details.field;
  return typeof named === "string" ? named.replace(/^\$\./, "") : "";
}

function controlFor(form, name) {
  for (const el of form.querySelectorAll("[data-field]")) if (el.dataset.field === name) return el;
  return null;
}

export function setError(form, name, message) {
  const control = controlFor(form, name);
  if (!control) return false;
  const box = control.closest(".field");
  const line = box.querySelector(".field-error");
  line.textContent = message;
  line.hidden = false;
  box.classList.add("invalid");
  control.setAttribute("aria-invalid", "true");
  return true;
}

export function clearErrors(form) {
  for (const box of form.querySelectorAll(".field.invalid")) {
    box.classList.remove("invalid");
    box.querySelector(".field-error").hidden = true;
    box.querySelector("[data-field]").removeAttribute("aria-invalid");
  }
}

// Shows the API's refusal beside its field (the server's own words);
// false when the form has no such field (the caller shows it elsewhere).
export function showRefusal(form, err) {
  const name = fieldOf(err);
  return Boolean(name) && setError(form, name, `${err.message} (${err.status} ${err.code})`);
}

// ---- when a run starts ---------------------------------------------------------------

const SPAN = /^[0-9]{1,15}(?:[.][0-9]{1,9})?(?:ms|s|m|h|d)?$/;

// "Start at" (this browser's local time) or "in" (90s, 30m, 2h, 1d): the
// body's scheduled_at (epoch ms) or delay, as POST .../runs, restart and
// reschedule take them. read() answers {} for "now", or null after
// marking what is wrong.
export function whenFields(form, { legend = "Start later (optional)" } = {}) {
  const at = h("input", { type: "datetime-local", name: "start_at", step: 1 });
  const delay = h("input", { name: "delay", placeholder: "e.g. 10m, 2h, 1d", maxlength: 32, size: 12 });
  const nodes = h("fieldset", { class: "when" }, h("legend", { text: legend }),
    field("Start at", at, { name: "scheduled_at", help: "this browser's local time" }),
    field("or in", delay, { name: "delay", help: "seconds, or 90s, 30m, 2h, 1d" }));
  function read() {
    const out = {};
    if (at.value && delay.value.trim()) {
      setError(form, "delay", "give a start time or a delay, not both");
      return null;
    }
    if (at.value) {
      const ms = new Date(at.value).getTime();
      if (Number.isNaN(ms)) {
        setError(form, "scheduled_at", "not a time");
        return null;
      }
      out.scheduled_at = ms;
    } else if (delay.value.trim()) {
      const text = delay.value.trim();
      if (!SPAN.test(text)) {
        setError(form, "delay", `must be seconds or a span such as 90s, 30m, 2h or 1d (got '${text}')`);
        return null;
      }
      out.delay = text;
    }
    return out;
  }
  return { nodes, read };
}
