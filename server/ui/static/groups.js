// Concurrency groups (GET /api/concurrency-groups): who holds a place and
// who waits, in order. A run or a job waiting shows its place in line.

import { api, seg } from "./api.js";
import { h } from "./dom.js";

export function groupHref(name) {
  return `/ui/groups?group=${encodeURIComponent(name)}`;
}

export function groupLink(name, attrs = {}) {
  return h("a", { href: groupHref(name), class: "group-name", ...attrs, text: name });
}

// The group as it stands, or null when nobody holds or waits in it.
export async function readGroup(name) {
  const page = await api("GET", "/api/concurrency-groups", { query: { group: name } });
  return page.groups[0] || null;
}

// "2nd of 3 waiting (limit 1, 1 running)": where a run (jobId null) or a
// job of it waits in its group.
export function placeText(group, runId, jobId = null) {
  if (!group) return "";
  const index = group.waiting.findIndex((m) => m.run_id === runId && (m.job_id || null) === jobId);
  const limit = group.per_secs ? `${group.limit} per ${group.per_secs}s` : `limit ${group.limit}`;
  const where = index < 0 ? "waiting" : `${ordinal(index + 1)} of ${group.waiting.length} waiting`;
  return `${where} (${limit}, ${group.running.length} running)`;
}

function ordinal(n) {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  return `${n}${suffix}`;
}

// A member: its run (and job), linked.
export function memberLink(m) {
  const label = `${m.workflow_id || "?"} · ${m.run_id.slice(0, 8)}${m.job_id ? ` · ${m.job_id}` : ""}`;
  const href = `/ui/runs/${seg(m.run_id)}${m.job_id ? `#job=${encodeURIComponent(m.job_id)}` : ""}`;
  return h("a", { href, class: "mono small", "data-member": `${m.run_id}${m.job_id ? `:${m.job_id}` : ""}`, text: label });
}
