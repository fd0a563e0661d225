// A workflow: its definition as submitted (YAML or JSON, shown as text),
// the versions its recent runs used, its recent runs, its schedules, and a
// Run form built from the inputs it declares.

import { api, can, seg } from "./api.js";
import { act, banner, confirmed, describe, start } from "./app.js";
import { checkInput, fieldName, inputField } from "./dispatch.js";
import { badge, byId, empty, fmtDuration, h, replace, table, when } from "./dom.js";
import { clearErrors, field, setError, showRefusal, whenFields } from "./forms.js";
import { scheduleTable } from "./schedules.js";
import { countsBar } from "./widgets.js";

const wf = decodeURIComponent(location.pathname.split("/").pop());
const base = `/api/workflows/${seg(wf)}`;

function inputRow(name = "", value = "") {
  const row = h("div", { class: "input-row" },
    h("input", { name: "key", placeholder: "NAME", pattern: "[A-Za-z_][A-Za-z0-9_]{0,63}", maxlength: 64 }),
    h("input", { name: "value", placeholder: "value", maxlength: 65536 }),
    h("button", { type: "button", class: "secondary small", text: "remove", on: { click: () => row.remove() } }));
  row.querySelector("[name=key]").value = name;
  row.querySelector("[name=value]").value = value;
  return row;
}

// A definition that declares no inputs takes any: NAME = value rows.
function freeInputs() {
  const rows = h("div", { class: "inputs" });
  const nodes = [
    h("p", { class: "muted", text: "This workflow declares no inputs: any NAME = value reaches the jobs as ROTA_INPUT_<NAME>." }),
    rows,
    h("button", { type: "button", class: "secondary small", id: "add-input", text: "add input",
      on: { click: () => rows.appendChild(inputRow()) } })];
  const read = () => {
    const inputs = {};
    for (const row of rows.children) {
      const key = row.querySelector("[name=key]").value.trim();
      if (key) inputs[key] = row.querySelector("[name=value]").value;
    }
    return inputs;
  };
  return { nodes, read };
}

// The declared inputs, typed: each checked as the server checks it.
function typedInputs(form, declared) {
  const fields = declared.map((input) => ({ input, box: inputField(input) }));
  const nodes = [
    h("p", { class: "muted", text: "Each input reaches the jobs as ROTA_INPUT_<NAME>." }),
    h("div", { class: "inputs typed" }, fields.map((f) => f.box))];
  const read = () => {
    const inputs = {};
    let ok = true;
    for (const { input, box } of fields) {
      const checked = checkInput(input, box.querySelector("[data-field]"));
      if (checked.error) {
        setError(form, fieldName(input), checked.error);
        ok = false;
      } else if (!checked.omit) {
        inputs[input.name] = checked.value;
      }
    }
    return ok ? inputs : null;
  };
  return { nodes, read };
}

function runForm(definition) {
  const form = h("form", { class: "run-form", id: "start-run", novalidate: true });
  const inputs = definition.inputs && definition.inputs.length ? typedInputs(form, definition.inputs) : freeInputs();
  const tags = h("input", { name: "tags", placeholder: "key:value key:value", maxlength: 2000, size: 40 });
  const later = whenFields(form);
  replace(form, h("h2", { text: "Run" }),
    h("p", { class: "muted", text: "Start a new run of the current definition, now or later." }),
    inputs.nodes,
    field("Tags", tags, { name: "tags" }),
    later.nodes,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "run-submit", text: "Start run" })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const values = inputs.read();
    const timing = later.read();
    if (values === null || timing === null) return;
    const tagMap = {};
    for (const pair of tags.value.split(/\s+/).filter(Boolean)) {
      const at = pair.indexOf(":");
      if (at > 0) tagMap[pair.slice(0, at)] = pair.slice(at + 1);
    }
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    try {
      const started = await api("POST", `${base}/runs`,
        { body: { inputs: values, tags: tagMap, triggered_by: "dashboard", ...timing } });
      location.assign(`/ui/runs/${seg(started.run_id)}`);
    } catch (err) {
      if (!showRefusal(form, err)) banner(describe(err), "error");
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function renderSchedules(count) {
  if (!count) return;
  const schedules = await api("GET", "/api/schedules", { query: { workflow_id: wf } });
  const panel = byId("schedules-panel");
  panel.hidden = !schedules.length;
  const draw = (list) => replace(byId("workflow-schedules"), scheduleTable(list, {
    changed: (now) => draw(list.map((s) => (s.id === now.id ? now : s))) }));
  draw(schedules);
}

// Pausing asks what becomes of new runs meanwhile (Hatchet's pause dialog):
// they wait and start in order when it resumes, or they are refused (and
// the schedule's ticks skipped).
function askPause(workflow) {
  const dialog = byId("pause-dialog");
  byId("pause-text").textContent = `Pause ${workflow.name} (${wf})? Runs in progress go on.`;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const choice = dialog.querySelector("input[name=new_runs]:checked");
      resolve(dialog.returnValue === "ok" && choice ? choice.value : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function pauseActions(workflow) {
  if (!can("submit")) return null;
  if (workflow.paused) {
    return h("button", { type: "button", id: "resume-workflow", text: "Resume workflow",
      on: { click: async (ev) => {
        const answer = await act(ev.target, () => api("POST", `${base}/resume`));
        if (answer && answer !== true) {
          banner(answer.detail, "info");
          await renderHead();
        }
      } } });
  }
  return h("button", { type: "button", class: "secondary", id: "pause-workflow", text: "Pause workflow…",
    on: { click: async (ev) => {
      const newRuns = await askPause(workflow);
      if (!newRuns) return;
      const answer = await act(ev.target, () => api("POST", `${base}/pause`, { body: { new_runs: newRuns } }));
      if (answer && answer !== true) {
        banner(answer.detail, "info");
        await renderHead();
      }
    } } });
}

const PAUSED = { queue: "paused: new runs wait for it to resume", skip: "paused: new runs are refused" };

async function renderHead() {
  const [workflow, definition] = await Promise.all([api("GET", base), api("GET", `${base}/definition`)]);
  const actions = h("div", { class: "actions" }, pauseActions(workflow));
  if (can("admin")) {
    actions.appendChild(h("button", { type: "button", class: "danger", id: "delete-workflow", text: "Delete workflow",
      on: { click: async (ev) => {
        if (!(await confirmed(`Delete ${workflow.name} (${wf}) with its finished runs? This cannot be undone.`))) return;
        if (await act(ev.target, () => api("DELETE", base)) !== null) location.assign("/ui/workflows");
      } } }));
  }
  replace(byId("workflow-head"),
    h("h1", {}, workflow.name, " ", badge(workflow.status),
      workflow.paused ? h("span", { id: "workflow-paused", title: PAUSED[workflow.paused] || "paused" }, badge("paused")) : null),
    h("p", { class: "mono muted", text: wf }),
    h("dl", { class: "facts" },
      h("dt", { text: "Kind" }), h("dd", { text: definition.kind }),
      h("dt", { text: "Trigger" }), h("dd", { text: workflow.trigger || "—" }),
      h("dt", { text: "Version" }), h("dd", {}, h("code", { text: definition.version })),
      h("dt", { text: "Updated" }), h("dd", {}, when(definition.updated_at_ms)),
      h("dt", { text: "Runs" }), h("dd", { text: String(workflow.runs) }),
      workflow.paused ? [h("dt", { text: "Paused" }), h("dd", { id: "paused-how" },
        `${PAUSED[workflow.paused] || "paused"} (since `, when(workflow.paused_at_ms), ")")] : null),
    actions);
  return { workflow, definition };
}

start(async () => {
  const [{ workflow, definition }, page] = await Promise.all([renderHead(), api("GET", `${base}/runs`, { query: { limit: 50 } })]);
  if (can("submit")) {
    const section = byId("run-form");
    section.hidden = false;
    replace(section, runForm(definition));
  }
  renderSchedules(workflow.schedules).catch((err) => banner(describe(err), "error"));
  replace(byId("definition"), h("pre", { class: "document", id: "document", text: definition.document }));
  const now = Date.now();
  replace(byId("workflow-runs"), page.runs.length ? table(["Run", "Status", "Jobs", "Trigger", "Version", "Created", "Duration"],
    page.runs.map((r) => h("tr", {},
      h("td", {}, h("a", { href: `/ui/runs/${seg(r.run_id)}`, text: `#${r.number}` })),
      h("td", {}, badge(r.status)),
      h("td", {}, countsBar(r.job_counts)),
      h("td", { text: r.triggered_by }),
      h("td", {}, h("code", { text: r.version })),
      h("td", {}, when(r.created_at, now)),
      h("td", { text: r.started_at ? fmtDuration((r.finished_at || now) - r.started_at) : "" })))) : empty("Never run."));
  // Versions as its recent runs used them: the definitions themselves are
  // kept while a run uses them; the current one is shown below.
  const versions = new Map();
  for (const r of page.runs) {
    const v = versions.get(r.version) || { runs: 0, first: r.created_at, last: r.created_at };
    v.runs += 1;
    v.first = Math.min(v.first, r.created_at);
    v.last = Math.max(v.last, r.created_at);
    versions.set(r.version, v);
  }
  if (!versions.has(definition.version)) versions.set(definition.version, { runs: 0, first: null, last: null });
  replace(byId("versions"), table(["Version", "Runs (of the last 50)", "First run", "Last run"],
    [...versions.entries()].map(([v, x]) => h("tr", {},
      h("td", {}, h("code", { text: v }), v === definition.version ? h("span", { class: "chip", text: "current" }) : null),
      h("td", { text: String(x.runs) }), h("td", {}, when(x.first, now)), h("td", {}, when(x.last, now))))));
  if (page.next_cursor) banner("Only the latest 50 runs are shown here; the Runs page filters by this workflow.", "info");
});
