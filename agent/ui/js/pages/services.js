// Services: the list (/v1/internal/ui/services, live) with search, filters and sorting; a
// service's detail (/v1/health/service/<name>, live) with every instance and check, its
// intentions and its upstreams.

import * as api from "../api.js";
import { h, replace, badge, tags, table, row, alert, dl, worst, statusRank } from "../dom.js";
import { href } from "../router.js";

const KINDS = [["", "Any kind"], ["typical", "Services"], ["connect-proxy", "Connect proxies"],
  ["mesh-gateway", "Mesh gateways"], ["ingress-gateway", "Ingress gateways"],
  ["terminating-gateway", "Terminating gateways"], ["api-gateway", "API gateways"]];
const SORTS = [["name", "Name (A–Z)"], ["-name", "Name (Z–A)"], ["health", "Unhealthiest first"],
  ["instances", "Most instances"]];
const state = { q: "", health: "", kind: "", tag: "", sort: "name" };

export function render(root, route) {
  return route.rest.length ? detail(root, route.rest[0]) : list(root);
}

function health(s) {
  if (s.ChecksCritical) return "critical";
  if (s.ChecksWarning) return "warning";
  return "passing";
}

function list(root) {
  const results = h("div", { id: "services-results" });
  const count = h("p", { class: "muted", "aria-live": "polite" });
  const tagSelect = h("select", { onchange: (e) => { state.tag = e.target.value; draw(); } });
  let services = null;

  const input = (label, el) => h("div", { class: "field" }, h("label", { for: el.id }, label), el);
  const search = h("input", { type: "search", id: "svc-search", value: state.q, placeholder: "name or tag",
    oninput: (e) => { state.q = e.target.value; draw(); } });
  const healthSel = h("select", { id: "svc-health", onchange: (e) => { state.health = e.target.value; draw(); } },
    [["", "Any health"], ["passing", "Passing"], ["warning", "Warning"], ["critical", "Critical"]]
      .map(([v, l]) => h("option", { value: v }, l)));
  const kindSel = h("select", { id: "svc-kind", onchange: (e) => { state.kind = e.target.value; draw(); } },
    KINDS.map(([v, l]) => h("option", { value: v }, l)));
  const sortSel = h("select", { id: "svc-sort", onchange: (e) => { state.sort = e.target.value; draw(); } },
    SORTS.map(([v, l]) => h("option", { value: v }, l)));
  tagSelect.id = "svc-tag";
  healthSel.value = state.health; kindSel.value = state.kind; sortSel.value = state.sort;

  replace(root, h("h1", {}, "Services"),
    h("div", { class: "toolbar", role: "search" },
      input("Search", search), input("Health", healthSel), input("Kind", kindSel),
      input("Tag", tagSelect), input("Sort by", sortSel)),
    count, results);

  function draw() {
    if (!services) return;
    const allTags = [...new Set(services.flatMap((s) => s.Tags || []))].sort();
    replace(tagSelect, h("option", { value: "" }, "Any tag"), allTags.map((t) => h("option", { value: t }, t)));
    tagSelect.value = allTags.includes(state.tag) ? state.tag : "";
    const q = state.q.trim().toLowerCase();
    let shown = services.filter((s) =>
      (!q || s.Name.toLowerCase().includes(q) || (s.Tags || []).some((t) => t.toLowerCase().includes(q))) &&
      (!state.health || health(s) === state.health) &&
      (!state.kind || (state.kind === "typical" ? !s.Kind : s.Kind === state.kind)) &&
      (!tagSelect.value || (s.Tags || []).includes(tagSelect.value)));
    const by = {
      name: (a, b) => a.Name.localeCompare(b.Name),
      "-name": (a, b) => b.Name.localeCompare(a.Name),
      health: (a, b) => statusRank(health(b)) - statusRank(health(a)) || a.Name.localeCompare(b.Name),
      instances: (a, b) => b.InstanceCount - a.InstanceCount || a.Name.localeCompare(b.Name),
    }[state.sort];
    shown = shown.slice().sort(by);
    count.textContent = `${shown.length} of ${services.length} services`;
    const rows = shown.map((s) => row(
      h("a", { href: href("services", [s.Name]) }, s.Name),
      s.Kind ? badge("kind", s.Kind) : "",
      badge(health(s), `${health(s)} (${s.ChecksPassing}✓ ${s.ChecksWarning}! ${s.ChecksCritical}✗)`),
      String(s.InstanceCount),
      tags(s.Tags)));
    replace(results, hidden ? filteredNote("services") : null,
      table("Services", ["Service", "Kind", "Health checks", "Instances", "Tags"], rows,
        services.length ? "No services match the filters." : hidden ? "Your token may read none of the services here." : "There are no services in this datacenter."));
  }

  let hidden = false;
  return api.watch("/v1/internal/ui/services", {}, (body, _, filtered) => { services = body || []; hidden = filtered; draw(); },
    (err) => replace(results, alert("error", api.explain(err))));
}

export function filteredNote(what) {
  return alert("warning", `Some ${what} are hidden: your token may not read them. Log in with a token that can to see them all.`);
}

function detail(root, name) {
  const instances = h("div", { id: "instances" });
  const extra = h("div");
  replace(root,
    h("p", {}, h("a", { href: href("services") }, "← All services")),
    h("h1", {}, name), instances, extra);
  loadExtras(extra, name);
  return api.watch(`/v1/health/service/${api.encodePath(name)}`, {}, (body) => {
    const list = body || [];
    if (!list.length) {
      replace(instances, h("p", { class: "empty" }, `Service "${name}" not found in this datacenter (no instances).`));
      return;
    }
    replace(instances, h("h2", {}, `Instances (${list.length})`), list.map(instance));
  }, (err) => replace(instances, alert("error", api.explain(err))));
}

function instance({ Node, Service, Checks }) {
  const address = Service.Address || Node.Address;
  const status = worst((Checks || []).map((c) => c.Status));
  return h("section", { class: "card instance", "aria-label": `Instance ${Service.ID} on ${Node.Node}` },
    h("h3", {}, Service.ID, " ", badge(status)),
    dl([
      ["Node", h("a", { href: href("nodes", [Node.Node]) }, Node.Node)],
      ["Address", `${address}${Service.Port ? `:${Service.Port}` : ""}`],
      ["Tags", (Service.Tags || []).length ? tags(Service.Tags) : "none"],
      ...Object.entries(Service.Meta || {}).map(([k, v]) => [`Meta: ${k}`, v]),
    ]),
    checkList(Checks || []));
}

export function checkList(checks) {
  if (!checks.length) return h("p", { class: "muted" }, "No health checks.");
  return h("ul", { class: "checks", "aria-label": "Health checks" }, checks.map((c) =>
    h("li", { "data-check": c.CheckID },
      badge(c.Status), " ", h("strong", {}, c.Name), " ", h("span", { class: "muted" }, `(${c.CheckID}${c.Type ? `, ${c.Type}` : ""})`),
      c.Notes ? h("p", { class: "muted" }, c.Notes) : null,
      h("pre", { class: "output", "aria-label": `Output of ${c.Name}` }, c.Output || "(no output)"))));
}

async function loadExtras(el, name) {
  const parts = [];
  try {
    const all = await api.get("/v1/connect/intentions");
    const mine = (all || []).filter((i) => i.DestinationName === name || i.SourceName === name);
    if (mine.length) {
      parts.push(h("h2", {}, "Intentions"), table("Intentions", ["Source", "Destination", "Action"],
        mine.map((i) => row(i.SourceName, i.DestinationName, badge(i.Action || "L7", i.Action || "L7 permissions"))), ""));
    }
  } catch { /* intentions need intentions:read; the page works without them */ }
  try {
    const proxies = await api.get(`/v1/catalog/connect/${api.encodePath(name)}`);
    const own = await api.get(`/v1/catalog/service/${api.encodePath(name)}`);
    const ups = [...(proxies || []), ...(own || [])].flatMap((p) =>
      (p.ServiceProxy?.Upstreams || []).map((u) => [p.ServiceID, u]));
    if (ups.length) {
      parts.push(h("h2", {}, "Upstreams"), table("Upstreams", ["Proxy", "Upstream", "Datacenter", "Local bind"],
        ups.map(([id, u]) => row(id, u.DestinationName, u.Datacenter || "(local)", `${u.LocalBindAddress || "127.0.0.1"}:${u.LocalBindPort}`)), ""));
    }
  } catch { /* no proxies */ }
  replace(el, parts);
}
