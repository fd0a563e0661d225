// A job's log: one tab per attempt, read tail-first and followed live.
//
// A log may be 100 MB: the page never loads it whole. It reads back from
// the end (?tail=TAIL_BYTES), takes the cursor of where that tail starts
// (X-Prev-Cursor) and follows the live stream from there, so the tail and
// every line after it arrive once, in order; "Load earlier" pages back
// (?before=). A log that fits in the tail has no cursor: the answer is
// dropped unread and the stream brings it all. At most MAX_LINES lines
// are kept on the page; the oldest give way.

import { api, seg } from "./api.js";
import { AnsiParser } from "./ansi.js";
import { h, replace } from "./dom.js";
import { follow } from "./sse.js";

const TAIL_BYTES = 256 * 1024;
const MAX_LINES = 20000;

class Lines {
  constructor(box) {
    this.box = box;
    this.parser = new AnsiParser();
    this.line = null;
    this.count = 0;
    this.dropped = 0;
  }

  newLine(stream, level) {
    this.line = h("div", { class: ["line", stream === "stderr" && "stderr", level && `lvl-${level}`] });
    this.count += 1;
    return this.line;
  }

  // Renders a chunk's text into `into` (the box, or a fragment to prepend).
  render(chunk, into, parser = this.parser) {
    const frag = document.createDocumentFragment();
    let text = chunk.data || "";
    if (chunk.stream === "event") {  // an entry the job logged through the SDK
      text = `[${chunk.level || "info"}]${chunk.step ? ` (${chunk.step})` : ""} ${text}`;
      if (!text.endsWith("\n")) text += "\n";
    }
    let line = into === this.box ? this.line : null;
    for (const piece of parser.write(text)) {
      if (piece === "\n") { line = null; continue; }
      if (!line) {
        line = this.newLine(chunk.stream, chunk.level);
        frag.appendChild(line);
      }
      if (piece === "\r") { replace(line); continue; }
      line.appendChild(piece.cls ? h("span", { class: piece.cls, text: piece.text }) : document.createTextNode(piece.text));
    }
    if (into === this.box) {
      this.line = line;
      this.box.appendChild(frag);
      this.trim();
    }
    return frag;
  }

  trim() {
    while (this.count > MAX_LINES && this.box.firstChild) {
      this.box.removeChild(this.box.firstChild);
      this.count -= 1;
      this.dropped += 1;
    }
  }
}

export function logView(container, run, job, attempts) {
  let current = null;  // {stop()} of the attempt shown
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const status = h("span", { class: "log-status muted" });
  const followBox = h("input", { type: "checkbox", checked: true, id: "log-follow" });
  const earlier = h("button", { type: "button", class: "secondary small", hidden: true, text: "Load earlier" });
  const box = h("div", { class: "log", id: "log", tabindex: 0, "aria-live": "off" });
  replace(container, h("div", { class: "log-head" }, tabs, status,
    h("label", { class: "small" }, followBox, " follow"), earlier), box);

  const numbers = [...new Set((attempts || []).map((a) => a.number))].sort((a, b) => a - b);
  if (!numbers.length) numbers.push(0);

  function setStatus(text) {
    status.textContent = text;
  }

  function scroll() {
    if (followBox.checked) box.scrollTop = box.scrollHeight;
  }

  box.addEventListener("scroll", () => {
    followBox.checked = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  });

  async function show(attempt) {
    if (current) current.stop();
    for (const t of tabs.children) t.setAttribute("aria-selected", String(t.dataset.attempt === String(attempt)));
    replace(box);
    earlier.hidden = true;
    const lines = new Lines(box);
    const base = `/api/runs/${seg(run)}/jobs/${seg(job)}/logs`;
    const mine = (chunk) => chunk.attempt === attempt;
    let before = null;
    let after = null;
    setStatus("loading…");
    try {
      // Every attempt's chunks, so the first one here is the entry the
      // cursor names (the stream, filtered, goes on after it).
      const resp = await api("GET", base, { query: { tail: TAIL_BYTES }, raw: true });
      before = resp.headers.get("X-Prev-Cursor");
      if (before) {
        const chunks = await resp.json();
        if (chunks.length && mine(chunks[0])) lines.render(chunks[0], box);
        after = before;
      } else if (resp.body) {
        await resp.body.cancel();  // the whole log fits in the tail, or no paging: the stream has it all
      }
    } catch (err) {
      setStatus(err.message);
      return;
    }
    earlier.hidden = !before;
    earlier.onclick = async () => {
      earlier.disabled = true;
      try {
        // Back a page at a time until one holds this attempt's lines (or the start).
        let chunks = [];
        for (let i = 0; i < 8 && before && !chunks.length; i++) {
          const resp = await api("GET", base, { query: { before, tail: TAIL_BYTES }, raw: true });
          chunks = (await resp.json()).filter(mine);
          before = resp.headers.get("X-Prev-Cursor");
        }
        const parser = new AnsiParser();
        const frag = document.createDocumentFragment();
        for (const chunk of chunks) frag.appendChild(lines.render(chunk, frag, parser));
        const height = box.scrollHeight;
        box.insertBefore(frag, box.firstChild);
        box.scrollTop += box.scrollHeight - height;
        earlier.hidden = !before;
      } catch (err) {
        setStatus(err.message);
      } finally {
        earlier.disabled = false;
      }
    };
    current = follow(`${base}/stream`, {
      params: { attempt },
      after,
      onEvent: (_, chunk) => {
        lines.render(chunk, box);
        scroll();
      },
      onEnd: (final) => setStatus(`ended: ${final.status}`),
      onState: (s, detail) => { if (s !== "ended") setStatus(detail ? `${s}: ${detail}` : s); },
    });
    scroll();
  }

  for (const n of numbers) {
    const tab = h("button", { type: "button", role: "tab", class: "tab", "data-attempt": n, text: `attempt ${n}` });
    tab.addEventListener("click", () => show(n));
    tabs.appendChild(tab);
  }
  show(numbers[numbers.length - 1]);
  return { stop: () => current && current.stop() };
}
