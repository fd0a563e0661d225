// A run's jobs as a graph: a layered layout written here (no library), drawn
// as SVG, each node coloured by its job's status through a class.
//
// Layout (Sugiyama's, simplified): each job's layer is its longest path from
// a job with no needs; an edge spanning several layers passes through one
// invisible point per layer between, so it takes part in the ordering; the
// order within each layer is improved by barycenter sweeps (each node moves
// toward the mean position of its neighbours in the layer before, then the
// layer after); coordinates follow from layer and order. 1,000 jobs lay out
// in a few tens of milliseconds (make bench prints the figure).

import { h, svg, replace } from "./dom.js";

export const NODE_W = 160;
export const NODE_H = 34;
const GAP_X = 56;
const GAP_Y = 14;
const DUMMY_H = 10;
const SWEEPS = 8;
// Past this many pass-through points (a job needed by hundreds of later
// ones), long edges are drawn straight and left out of the ordering.
const MAX_DUMMIES = 20000;

// nodes: [id...]; edges: [[from, to]...] (from is needed by to).
export function layout(nodes, edges) {
  const ids = new Set(nodes);
  const preds = new Map(nodes.map((n) => [n, []]));
  const succs = new Map(nodes.map((n) => [n, []]));
  const kept = [];
  for (const [a, b] of edges) {
    if (!ids.has(a) || !ids.has(b) || a === b) continue;
    preds.get(b).push(a);
    succs.get(a).push(b);
    kept.push([a, b]);
  }
  // Longest-path layers, in topological order (Kahn); a cycle, which the
  // server never stores, would leave nodes out: they go in the last layer.
  const indeg = new Map(nodes.map((n) => [n, preds.get(n).length]));
  const layer = new Map();
  const queue = nodes.filter((n) => indeg.get(n) === 0);
  for (const n of queue) layer.set(n, 0);
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i];
    for (const s of succs.get(n)) {
      layer.set(s, Math.max(layer.get(s) || 0, layer.get(n) + 1));
      indeg.set(s, indeg.get(s) - 1);
      if (indeg.get(s) === 0) queue.push(s);
    }
  }
  let depth = 0;
  for (const v of layer.values()) depth = Math.max(depth, v);
  for (const n of nodes) if (!layer.has(n)) layer.set(n, depth + 1);
  for (const v of layer.values()) depth = Math.max(depth, v);

  // Layers of vertices: real nodes, then pass-through points of long edges.
  const layers = Array.from({ length: depth + 1 }, () => []);
  const vertex = new Map();  // id -> {id, layer, dummy, up: [], down: []}
  for (const n of [...queue, ...nodes]) {
    if (vertex.has(n)) continue;
    const v = { id: n, layer: layer.get(n), dummy: false, up: [], down: [] };
    vertex.set(n, v);
    layers[v.layer].push(v);
  }
  let dummies = 0;
  for (const [a, b] of kept) dummies += Math.max(0, layer.get(b) - layer.get(a) - 1);
  const useDummies = dummies <= MAX_DUMMIES;
  const routes = [];
  for (const [a, b] of kept) {
    const path = [vertex.get(a)];
    if (useDummies) {
      for (let l = layer.get(a) + 1; l < layer.get(b); l++) {
        const d = { id: `${a}\u0000${b}\u0000${l}`, layer: l, dummy: true, up: [], down: [] };
        layers[l].push(d);
        path.push(d);
      }
    }
    path.push(vertex.get(b));
    for (let i = 1; i < path.length; i++) {
      if (path[i].layer === path[i - 1].layer + 1) {
        path[i - 1].down.push(path[i]);
        path[i].up.push(path[i - 1]);
      }
    }
    routes.push({ from: a, to: b, path });
  }

  // Barycenter ordering.
  const order = (l) => l.forEach((v, i) => { v.pos = i; });
  layers.forEach(order);
  const sweep = (l, side) => {
    for (const v of l) {
      const ns = v[side];
      v.bary = ns.length ? ns.reduce((s, n) => s + n.pos, 0) / ns.length : v.pos;
    }
    l.sort((x, y) => x.bary - y.bary || x.pos - y.pos);
    order(l);
  };
  for (let i = 0; i < SWEEPS; i++) {
    for (let l = 1; l < layers.length; l++) sweep(layers[l], "up");
    for (let l = layers.length - 2; l >= 0; l--) sweep(layers[l], "down");
  }

  // Coordinates: a column per layer, each column centred on the tallest.
  const heights = layers.map((l) => l.reduce((s, v) => s + (v.dummy ? DUMMY_H : NODE_H + GAP_Y), 0));
  const tallest = Math.max(0, ...heights);
  layers.forEach((l, i) => {
    let y = (tallest - heights[i]) / 2;
    for (const v of l) {
      v.x = i * (NODE_W + GAP_X);
      v.y = y;
      y += v.dummy ? DUMMY_H : NODE_H + GAP_Y;
    }
  });
  const pos = new Map();
  for (const v of vertex.values()) pos.set(v.id, { x: v.x, y: v.y, layer: v.layer });
  const edgeOut = routes.map(({ from, to, path }) => ({
    from, to,
    points: path.map((v, i) => {
      if (i === 0) return [v.x + NODE_W, v.y + NODE_H / 2];
      if (i === path.length - 1) return [v.x, v.y + NODE_H / 2];
      return [v.x + NODE_W / 2, v.y + DUMMY_H / 2];
    }),
  }));
  return { pos, edges: edgeOut, width: layers.length * (NODE_W + GAP_X) - GAP_X, height: tallest, layers: layers.length };
}

function curve(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1];
    const [x1, y1] = points[i];
    const dx = Math.max(20, (x1 - x0) / 2);
    d += ` C${x0 + dx},${y0} ${x1 - dx},${y1} ${x1},${y1}`;
  }
  return d;
}

function short(text, n = 21) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

// Draws `jobs` (the run's, with id, name, status, depends_on) into `box`.
// Returns {setStatus(jobId, status), select(jobId)}.
export function drawDag(box, jobs, onSelect) {
  const result = layout(jobs.map((j) => j.id), jobs.flatMap((j) => (j.depends_on || []).map((n) => [n, j.id])));
  const pad = 8;
  const width = Math.max(result.width, NODE_W) + 2 * pad;
  const height = Math.max(result.height, NODE_H) + 2 * pad;
  const nodes = new Map();
  const names = new Map(jobs.map((j) => [j.id, `${j.name} (${j.id})`]));
  const root = svg("svg", { class: "dag-svg", viewBox: `${-pad} ${-pad} ${width} ${height}`, width, height,
    role: "img", "aria-label": `graph of ${jobs.length} jobs` });
  const edgeLayer = svg("g", { class: "edges" });
  for (const e of result.edges) edgeLayer.appendChild(svg("path", { d: curve(e.points), class: "edge" }));
  const nodeLayer = svg("g", { class: "nodes" });
  for (const job of jobs) {
    const p = result.pos.get(job.id);
    const g = svg("g", { class: `node st-${job.status}`, transform: `translate(${p.x},${p.y})`, tabindex: 0,
      "data-job": job.id, "data-status": job.status, role: "button" },
      svg("title", { text: `${job.name} (${job.id}): ${job.status}` }),
      svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      svg("text", { x: 10, y: NODE_H / 2 + 4, text: short(job.name || job.id) }));
    const pick = () => onSelect && onSelect(job.id);
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") pick(); });
    nodes.set(job.id, g);
    nodeLayer.appendChild(g);
  }
  root.appendChild(edgeLayer);
  root.appendChild(nodeLayer);

  let zoom = 1;
  const setZoom = (z) => {
    zoom = Math.max(0.1, Math.min(2, z));
    root.setAttribute("width", String(width * zoom));
    root.setAttribute("height", String(height * zoom));
  };
  // Fitting shrinks a wide graph, but not past legibility: beyond that it scrolls.
  const fit = () => setZoom(Math.max(0.7, Math.min(1, ((box.clientWidth || width) - 4) / width)));
  const tools = h("div", { class: "dag-tools" },
    h("button", { type: "button", class: "secondary small", title: "zoom out", text: "−", on: { click: () => setZoom(zoom / 1.25) } }),
    h("button", { type: "button", class: "secondary small", title: "zoom in", text: "+", on: { click: () => setZoom(zoom * 1.25) } }),
    h("button", { type: "button", class: "secondary small", title: "fit the width", text: "fit", on: { click: fit } }));
  replace(box, tools, h("div", { class: "dag-scroll" }, root));
  if (width > (box.clientWidth || width)) fit();

  let selected = null;
  return {
    layout: result,
    setStatus(id, status) {
      const g = nodes.get(id);
      if (!g) return false;
      g.setAttribute("class", `node st-${status}${id === selected ? " selected" : ""}`);
      g.setAttribute("data-status", status);
      g.firstChild.textContent = `${names.get(id)}: ${status}`;
      return true;
    },
    select(id) {
      if (selected && nodes.get(selected)) nodes.get(selected).classList.remove("selected");
      selected = id;
      if (nodes.get(id)) nodes.get(id).classList.add("selected");
    },
  };
}
