// What every page does first: learn whether the server checks tokens and
// what the token may do (/api/whoami), take the operator's token once when
// it does, then hand over to the page's own module.

import { api, ApiError, session, setToken, token } from "./api.js";
import { byId, h, replace } from "./dom.js";

export function banner(text, kind = "info") {
  const node = h("div", { class: ["banner", kind], role: kind === "error" ? "alert" : "status" }, text);
  byId("banners").appendChild(node);
  return node;
}

// A destructive action asks first, in the page's own dialog (never
// window.confirm: a native dialog is reserved as a sign that something
// is wrong, and the browser tests treat it so).
export function confirmed(text) {
  const dialog = byId("confirm");
  byId("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// Runs an action (a button's), showing its error; resolves to its result
// (true for one that answers nothing), or null when it failed.
export async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    const result = await fn();
    return result === null || result === undefined ? true : result;
  } catch (err) {
    banner(describe(err), "error");
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

export function describe(err) {
  if (err instanceof ApiError) return `${err.message} (${err.status} ${err.code})`;
  return String(err && err.message ? err.message : err);
}

function tokenForm(main, message) {
  const input = h("input", { type: "password", name: "token", id: "token-input", autocomplete: "off",
    placeholder: "rota_… or the admin token", required: true, size: 60 });
  const form = h("form", { class: "token-form", id: "token-form" },
    h("h1", { text: "API token" }),
    message ? h("p", { class: "banner error", role: "alert", text: message }) : null,
    h("p", { text: "This server checks tokens. Paste an API token (read scope at least; submit or admin to act)."
      + " It is kept in this tab only (sessionStorage) and sent as an Authorization header." }),
    h("label", {}, "Token ", input),
    h("button", { type: "submit", text: "Use this token" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    location.reload();
  });
  replace(main, form);
  input.focus();
}

function sessionBar() {
  const bar = byId("session");
  if (!session.auth) {
    replace(bar, h("span", { class: "muted", text: "auth off" }));
    return;
  }
  const me = session.me;
  const forget = h("button", { type: "button", class: "secondary small", id: "forget-token", text: "Forget token" });
  forget.addEventListener("click", () => { setToken(""); location.reload(); });
  replace(bar, h("span", { class: "who", title: me.token_id || "" },
    `${me.name || me.token_id}: ${me.scopes.join(", ")}`), " ", forget);
}

export async function start(mount) {
  const main = byId("main");
  window.addEventListener("rota:unauthenticated", () => {
    if (session.auth) {
      setToken("");
      tokenForm(main, "The server refused the token (revoked, expired or mistyped). Paste a valid one.");
    }
  });
  // Who am I, and does this server check tokens at all: with auth off the
  // answer comes without one (auth: false); with auth on and no token, 401.
  const had = token();
  try {
    session.me = await api("GET", "/api/whoami");
    session.auth = session.me.auth;
  } catch (err) {
    if (err.status === 401) {
      if (!had) tokenForm(main);  // with a token, rota:unauthenticated put the form up
      return;
    }
    if (err.status === 403) {
      setToken("");
      tokenForm(main, "This token may not read (it lacks the read scope). Paste another.");
      return;
    }
    banner(err.status === 503 ? `The server is not ready: ${err.message}` : describe(err), "error");
    return;
  }
  if (!session.auth) {
    banner("Authentication is off on this server: anyone who can reach it can see everything and run commands"
      + " on its workers.", "warn").id = "auth-off";
  }
  sessionBar();
  try {
    await mount(main);
  } catch (err) {
    banner(describe(err), "error");
    throw err;
  }
}
