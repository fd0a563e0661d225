// ANSI colours in job logs: a small SGR parser. It turns text with escape
// sequences into pieces of plain text, each with the classes its colours
// and weight map to (rota.css defines fg-0..fg-255, bg-0..bg-255); the log
// view puts each piece in a span by textContent. Every other escape
// sequence (cursor moves, titles) is dropped. The state carries across
// chunks, and a sequence cut between two chunks is completed by the next.

const ESC = "\x1b";

function cube(r, g, b) {
  const c = (v) => Math.max(0, Math.min(5, Math.round((Number(v) || 0) / 51)));
  return 16 + 36 * c(r) + 6 * c(g) + c(b);
}

export class AnsiParser {
  constructor() {
    this.reset();
    this.pending = "";
  }

  reset() {
    this.fg = null;
    this.bg = null;
    this.bold = false;
    this.dim = false;
    this.italic = false;
    this.underline = false;
    this.inverse = false;
  }

  classes() {
    const out = [];
    let fg = this.fg;
    let bg = this.bg;
    if (this.inverse) [fg, bg] = [bg === null ? "inv" : bg, fg === null ? "inv" : fg];
    if (fg !== null) out.push(`fg-${fg}`);
    if (bg !== null) out.push(`bg-${bg}`);
    if (this.bold) out.push("sgr-b");
    if (this.dim) out.push("sgr-d");
    if (this.italic) out.push("sgr-i");
    if (this.underline) out.push("sgr-u");
    return out.join(" ");
  }

  sgr(params) {
    const p = params.length ? params : [0];
    for (let i = 0; i < p.length; i++) {
      const n = p[i];
      if (n === 0) this.reset();
      else if (n === 1) this.bold = true;
      else if (n === 2) this.dim = true;
      else if (n === 3) this.italic = true;
      else if (n === 4) this.underline = true;
      else if (n === 7) this.inverse = true;
      else if (n === 22) { this.bold = false; this.dim = false; }
      else if (n === 23) this.italic = false;
      else if (n === 24) this.underline = false;
      else if (n === 27) this.inverse = false;
      else if (n >= 30 && n <= 37) this.fg = n - 30;
      else if (n >= 90 && n <= 97) this.fg = n - 90 + 8;
      else if (n === 39) this.fg = null;
      else if (n >= 40 && n <= 47) this.bg = n - 40;
      else if (n >= 100 && n <= 107) this.bg = n - 100 + 8;
      else if (n === 49) this.bg = null;
      else if (n === 38 || n === 48) {
        let colour = null;
        if (p[i + 1] === 5) { colour = p[i + 2]; i += 2; }
        else if (p[i + 1] === 2) { colour = cube(p[i + 2], p[i + 3], p[i + 4]); i += 4; }
        if (Number.isInteger(colour) && colour >= 0 && colour <= 255) {
          if (n === 38) this.fg = colour; else this.bg = colour;
        }
      }
    }
  }

  // Pieces of `text`: {text, cls} runs, "\n" for a new line and "\r" for a
  // return to the start of the line (what progress bars redraw with).
  write(text) {
    const s = this.pending + text;
    this.pending = "";
    const out = [];
    let run = "";
    const flush = () => {
      if (run) out.push({ text: run, cls: this.classes() });
      run = "";
    };
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      if (c === "\n") { flush(); out.push("\n"); i++; continue; }
      if (c === "\r") {
        flush();
        if (s[i + 1] === "\n") { out.push("\n"); i += 2; } else if (i + 1 === s.length) { this.pending = "\r"; i++; } else { out.push("\r"); i++; }
        continue;
      }
      if (c !== ESC) { run += c; i++; continue; }
      // an escape sequence
      if (i + 1 >= s.length) { flush(); this.pending = s.slice(i); break; }
      const kind = s[i + 1];
      if (kind === "[") {
        let j = i + 2;
        while (j < s.length && !(s.charCodeAt(j) >= 0x40 && s.charCodeAt(j) <= 0x7e)) j++;
        if (j >= s.length) {
          if (s.length - i > 64) { i = s.length; break; }  // not a sequence: drop it
          flush(); this.pending = s.slice(i); break;
        }
        if (s[j] === "m") {
          flush();
          const body = s.slice(i + 2, j);
          this.sgr(body === "" ? [] : body.split(/[;:]/).map((x) => (x === "" ? 0 : parseInt(x, 10))));
        }
        i = j + 1;
      } else if (kind === "]") {  // OSC: up to BEL or ESC \
        let j = i + 2;
        while (j < s.length && s[j] !== "\x07" && !(s[j] === ESC && s[j + 1] === "\\")) j++;
        if (j >= s.length) {
          if (s.length - i > 4096) { i = s.length; break; }
          flush(); this.pending = s.slice(i); break;
        }
        i = s[j] === "\x07" ? j + 1 : j + 2;
      } else {
        i += 2;  // a two-character escape
      }
    }
    flush();
    return out;
  }
}
