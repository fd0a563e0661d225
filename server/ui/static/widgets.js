// Small pieces several pages draw.

import { h, svg } from "./dom.js";

export const JOB_STATUSES = ["success", "running", "waiting", "queued", "failure", "cancelled", "skipped"];

// A run's jobs by status as one stacked bar (SVG: widths are attributes,
// and the CSP allows no inline style).
export function countsBar(counts, width = 120) {
  const total = Object.values(counts || {}).reduce((a, b) => a + b, 0);
  const title = JOB_STATUSES.filter((s) => counts && counts[s]).map((s) => `${counts[s]} ${s}`).join(", ");
  const bar = svg("svg", { class: "counts-bar", width, height: 10, viewBox: `0 0 ${width} 10`, role: "img",
    "aria-label": title || "no jobs" }, svg("title", { text: title || "no jobs" }));
  let x = 0;
  for (const s of JOB_STATUSES) {
    const n = (counts || {})[s] || 0;
    if (!n) continue;
    const w = (n / total) * width;
    bar.appendChild(svg("rect", { x, y: 0, width: w, height: 10, class: `fill st-${s}` }));
    x += w;
  }
  return bar;
}

export function progressBar(percent, label) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  return h("span", { class: "progress" },
    h("progress", { max: 100, value, "aria-label": label || "progress" }), ` ${value.toFixed(0)}%`);
}
