// A note's HTML, as the server rendered and sanitised it (markdown-it-py,
// then nh3), put on the page through a third wall: it is parsed in an
// inert <template> (nothing in it runs or loads), then rebuilt element by
// element from an allow-list, copying text as text and only an http(s) or
// mailto href. Nothing the server sent is attached as it came.

import { h, safeHref } from "./dom.js";

const ALLOWED = new Set(["p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del",
  "code", "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"]);

function rebuild(node, into) {
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) {
      into.appendChild(document.createTextNode(child.textContent));
    } else if (child.nodeType === Node.ELEMENT_NODE) {
      const tag = child.localName;
      if (!ALLOWED.has(tag)) {  // keep its text, drop the element
        rebuild(child, into);
        continue;
      }
      const attrs = {};
      if (tag === "a") {
        const href = safeHref(child.getAttribute("href") || "");
        if (href && !href.startsWith("/")) {
          attrs.href = href;
          attrs.rel = "noopener noreferrer nofollow";
        }
      }
      if (tag === "ol" && /^\d{1,9}$/.test(child.getAttribute("start") || "")) attrs.start = child.getAttribute("start");
      const el = h(tag, attrs);
      rebuild(child, el);
      into.appendChild(el);
    }
  }
  return into;
}

export function sanitizedHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html;  // inert: a template's content neither runs nor loads anything
  return rebuild(template.content, h("div", { class: "markdown" }));
}
