// The shell: navigation, datacenter switcher, login state, connection banner, and the page
// router. Each page module exports render(root, route, ctx) and returns a cleanup function
// (its blocking queries stop when the page is left).

import * as api from "./api.js";
import { h, replace, alert } from "./dom.js";
import { parse, href } from "./router.js";

const PAGES = {
  services: () => import("./pages/services.js"),
  nodes: () => import("./pages/nodes.js"),
  kv: () => import("./pages/kv.js"),
  intentions: () => import("./pages/intentions.js"),
  acl: () => import("./pages/acl.js"),
  gitkv: () => import("./pages/gitkv.js"),
  login: () => import("./pages/login.js"),
};
const NAV = [
  ["services", "Services"], ["nodes", "Nodes"], ["kv", "Key/Value"],
  ["intentions", "Intentions"], ["acl", "Access Controls"], ["gitkv", "gitkv"],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const dcSelect = document.getElementById("dc");
const loginBox = document.getElementById("login-state");
const banner = document.getElementById("connection");

const ctx = { self: null, localDc: "", aclEnabled: false, refreshLogin, route: () => route() };
let cleanup = null;
let routeSeq = 0;

api.onConnection(({ ok, retryIn }) => {
  banner.hidden = ok;
  banner.textContent = ok ? "" : `Disconnected from the agent, retrying${retryIn ? ` in ${retryIn} s` : ""}…`;
});

function renderNav(page) {
  replace(nav, NAV.filter(([p]) => p !== "acl" || ctx.aclEnabled).map(([p, label]) =>
    h("a", { href: href(p), "aria-current": p === page ? "page" : undefined }, label)));
}

async function loadDatacenters() {
  let dcs = [];
  try { dcs = await api.get("/v1/catalog/datacenters"); } catch { dcs = []; }
  if (ctx.localDc && !dcs.includes(ctx.localDc)) dcs.unshift(ctx.localDc);
  replace(dcSelect, dcs.map((d) => h("option", { value: d }, d)));
  dcSelect.value = api.dc() || ctx.localDc;
}

dcSelect.addEventListener("change", () => {
  const r = parse();
  // Another datacenter has other objects: go to the page's list, not this object.
  location.hash = href(r.page === "login" ? "services" : r.page, [], { dc: dcSelect.value });
});

async function loadSelf() {
  // Every answer names the ACL default policy; with "deny" and no token, asking for
  // /v1/agent/self would only be refused, so the login prompt comes first.
  if (!api.aclDefaultPolicy()) await api.get("/v1/catalog/datacenters").catch(() => null);
  if (api.aclDefaultPolicy() === "deny" && !api.token()) {
    ctx.self = null;
    ctx.aclEnabled = true;
    return;
  }
  try {
    ctx.self = await api.get("/v1/agent/self");
    ctx.localDc = ctx.self.Config.Datacenter;
    ctx.aclEnabled = Boolean(ctx.self.DebugConfig?.ACLsEnabled);
    document.getElementById("agent-name").textContent = `${ctx.self.Config.NodeName} · Consul API ${ctx.self.Config.Version}`;
  } catch (err) {
    ctx.self = null;
    ctx.aclEnabled = err.status === 403; // agent:read denied: ACLs are on
  }
}

async function refreshLogin() {
  if (!ctx.self) await loadSelf();
  api.setAclEnabled(ctx.aclEnabled);
  const t = api.token();
  ctx.tokenSelf = null;
  if (ctx.aclEnabled && t) {
    try { ctx.tokenSelf = await api.get("/v1/acl/token/self"); } catch { ctx.tokenSelf = null; }
  }
  if (!ctx.aclEnabled) {
    replace(loginBox);
  } else if (t) {
    const self = ctx.tokenSelf;
    const who = self ? self.Description || `token ${self.AccessorID.slice(0, 8)}` : "an unknown token";
    replace(loginBox, h("span", { class: "who" }, `Logged in: ${who}`),
      h("button", { type: "button", class: "secondary small", id: "logout", onclick: logout }, "Log out"));
  } else {
    replace(loginBox, h("a", { class: "button small", id: "login-link", href: href("login") }, "Log in"));
  }
  renderNav(parse().page);
}

function logout() {
  api.setToken("");
  ctx.self = null;
  refreshLogin().then(route);
}

async function route() {
  const seq = ++routeSeq;
  const r = parse();
  api.setDc(r.query.get("dc") || ctx.localDc);
  if (dcSelect.options.length) dcSelect.value = api.dc();
  renderNav(r.page);
  if (cleanup) { cleanup(); cleanup = null; }
  const load = PAGES[r.page];
  if (!load) {
    replace(main, h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, "There is no such page in this UI."));
    return;
  }
  // Deny-by-default ACLs and no token: ask for one rather than show empty tables.
  if (ctx.aclEnabled && !api.token() && api.aclDefaultPolicy() === "deny" && r.page !== "login") {
    const mod = await PAGES.login();
    if (seq !== routeSeq) return;
    cleanup = mod.render(main, r, { ...ctx, reason: "This cluster denies by default: log in with a token to see it." });
    focusHeading();
    return;
  }
  try {
    const mod = await load();
    if (seq !== routeSeq) return;
    replace(main);
    cleanup = mod.render(main, r, ctx) || null;
    focusHeading();
  } catch (err) {
    replace(main, h("h1", { tabindex: "-1" }, "Error"), alert("error", api.explain(err)));
  }
}

// Screen-reader and keyboard users land on the new page's heading.
let firstRoute = true;
function focusHeading() {
  if (firstRoute) { firstRoute = false; return; }
  const h1 = main.querySelector("h1");
  if (h1) { h1.setAttribute("tabindex", "-1"); h1.focus({ preventScroll: true }); }
}

async function boot() {
  await refreshLogin();
  await loadDatacenters();
  if (!ctx.localDc) ctx.localDc = dcSelect.value || "";
  window.addEventListener("hashchange", route);
  await route();
  document.documentElement.dataset.ready = "1";
}

boot();
