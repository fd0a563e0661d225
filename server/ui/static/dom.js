// Building the page. Everything shown comes from jobs, workers and people,
// so it is untrusted: text goes in as text nodes (textContent), attributes
// through setAttribute, links only to http(s) and this dashboard. Nothing
// here ever assigns innerHTML.

const SVG_NS = "http://www.w3.org/2000/svg";
// Attributes that could carry script or load something: refused outright.
const REFUSED_ATTR = /^on|^style$|^srcdoc$|^formaction$/i;

export function safeHref(value) {
  const text = String(value);
  if (text.startsWith("/") && !text.startsWith("//")) return text;
  try {
    const url = new URL(text, location.origin);
    if (url.protocol === "https:" || url.protocol === "http:" || url.protocol === "mailto:") return url.href;
  } catch (_) { /* not a URL */ }
  return null;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (name === "text") node.textContent = String(value);
    else if (name === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else if (name === "href") {
      const href = safeHref(value);
      if (href) node.setAttribute("href", href);
    } else if (REFUSED_ATTR.test(name)) throw new Error(`refused attribute ${name}`);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// h("a", {href: "/ui", class: "x"}, "text", otherNode)
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function replace(node, ...children) {
  clear(node);
  append(node, children);
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

// ---- formatting -------------------------------------------------------------------

export function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  return d.toLocaleString();
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

export function fmtAgo(ms, now = Date.now()) {
  if (!ms) return "";
  const d = now - Number(ms);
  return d < 1000 ? "just now" : `${fmtDuration(d)} ago`;
}

// A time element: relative text, the absolute time on hover.
export function when(ms, now) {
  if (!ms) return h("span", { class: "muted", text: "—" });
  return h("time", { datetime: new Date(Number(ms)).toISOString(), title: fmtTime(ms), text: fmtAgo(ms, now) });
}

export function badge(status) {
  return h("span", { class: ["badge", `st-${String(status).replace(/[^a-z_]/g, "")}`], text: status });
}

export function chips(items, cls = "chip") {
  return h("span", { class: "chips" }, (items || []).map((x) => h("span", { class: cls, text: x })));
}

// A table from rows of cells; `head` is a list of column titles.
export function table(head, rows, attrs = {}) {
  return h("table", { class: ["table", attrs.class] },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { text: t })))),
    h("tbody", {}, rows));
}

export function empty(text) {
  return h("p", { class: "empty", text });
}

// Key/value pairs as a definition list; values shown as text.
export function pairs(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("span", { class: "muted", text: "none" });
  return h("dl", { class: "pairs" }, entries.map(([k, v]) => [h("dt", { text: k }),
    h("dd", {}, h("code", { text: typeof v === "string" ? v : JSON.stringify(v) }))]));
}

// Any JSON value, pretty-printed, as text.
export function jsonBlock(value) {
  return h("pre", { class: "json", text: JSON.stringify(value, null, 2) });
}
