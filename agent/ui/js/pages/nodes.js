// Nodes: the list (/v1/internal/ui/nodes, live) with health, address and the leader badge;
// a node's detail (/v1/internal/ui/node/<name>, live) with checks, services, lock sessions
// (invalidate), metadata and the round-trip time to this agent from network coordinates.

import * as api from "../api.js";
import { h, replace, badge, tags, table, row, alert, dl, worst, confirmDialog } from "../dom.js";
import { href } from "../router.js";
import { checkList, filteredNote } from "./services.js";

export function render(root, route, ctx) {
  return route.rest.length ? detail(root, route.rest[0], ctx) : list(root);
}

function list(root) {
  const results = h("div");
  const search = h("input", { type: "search", id: "node-search", placeholder: "name or address", oninput: () => draw() });
  let nodes = null;
  let hidden = false;
  let leader = "";
  replace(root, h("h1", {}, "Nodes"),
    h("div", { class: "toolbar", role: "search" },
      h("div", { class: "field" }, h("label", { for: search.id }, "Search"), search)),
    results);

  function draw() {
    if (!nodes) return;
    const q = search.value.trim().toLowerCase();
    const shown = nodes.filter((n) => !q || n.Node.toLowerCase().includes(q) || n.Address.includes(q));
    const rows = shown.map((n) => {
      const status = worst((n.Checks || []).map((c) => c.Status));
      const isLeader = leader && leader.slice(0, leader.lastIndexOf(":")) === n.Address;
      return row(
        [h("a", { href: href("nodes", [n.Node]) }, n.Node), isLeader ? [" ", badge("leader", "Leader")] : null],
        badge(status),
        n.Address,
        String((n.Services || []).length));
    });
    replace(results, hidden ? filteredNote("nodes") : null, table("Nodes", ["Node", "Health", "Address", "Services"], rows,
      nodes.length ? "No nodes match the search." : hidden ? "Your token may read none of the nodes here." : "There are no nodes in this datacenter."));
  }

  const stops = [
    api.watch("/v1/internal/ui/nodes", {}, (body, _, filtered) => { nodes = body || []; hidden = filtered; draw(); },
      (err) => replace(results, alert("error", api.explain(err)))),
    // The leader changes rarely: read it with each nodes change and once a minute.
    pollLeader((l) => { leader = l; draw(); }),
  ];
  return () => stops.forEach((s) => s());
}

function pollLeader(fn) {
  let stopped = false;
  const once = async () => {
    try { fn(await api.get("/v1/status/leader")); } catch { fn(""); }
  };
  once();
  const timer = setInterval(() => !stopped && once(), 60000);
  return () => { stopped = true; clearInterval(timer); };
}

// Vivaldi distance between two coordinates, in seconds (Consul's lib.ComputeDistance).
export function rtt(a, b) {
  if (!a || !b || a.Vec.length !== b.Vec.length) return null;
  const d = Math.sqrt(a.Vec.reduce((sum, v, i) => sum + (v - b.Vec[i]) ** 2, 0)) + a.Height + b.Height;
  const adjusted = d + a.Adjustment + b.Adjustment;
  return adjusted > 0 ? adjusted : d;
}

function detail(root, name, ctx) {
  const info = h("div", { id: "node-info" });
  const sessions = h("div", { id: "node-sessions" });
  const coord = h("div", { id: "node-rtt" });
  replace(root, h("p", {}, h("a", { href: href("nodes") }, "← All nodes")), h("h1", {}, name), info,
    h("h2", {}, "Lock sessions"), sessions, h("h2", {}, "Network coordinates"), coord);
  loadRtt(coord, name, ctx);

  const stopInfo = api.watch(`/v1/internal/ui/node/${api.encodePath(name)}`, {}, (n) => {
    if (!n) { replace(info, h("p", { class: "empty" }, `Node "${name}" not found in this datacenter.`)); return; }
    const checks = (n.Checks || []).filter((c) => !c.ServiceID);
    replace(info,
      dl([["Address", n.Address], ["Health", badge(worst((n.Checks || []).map((c) => c.Status)))],
        ...Object.entries(n.TaggedAddresses || {}).map(([k, v]) => [`Tagged address: ${k}`, v])]),
      h("h2", {}, "Node checks"), checkList(checks),
      h("h2", {}, "Services"),
      table("Services on this node", ["Service", "ID", "Port", "Tags", "Health"],
        (n.Services || []).map((s) => row(
          h("a", { href: href("services", [s.Service]) }, s.Service), s.ID, String(s.Port || ""), tags(s.Tags),
          badge(worst((n.Checks || []).filter((c) => c.ServiceID === s.ID).map((c) => c.Status))))),
        "No services on this node."),
      h("h2", {}, "Metadata"),
      Object.keys(n.Meta || {}).length ? dl(Object.entries(n.Meta)) : h("p", { class: "empty" }, "No metadata."));
  }, (err) => replace(info, alert("error", api.explain(err))));

  let canInvalidate = false;
  let sessionList = [];
  const drawSessions = () => {
    const list = sessionList;
    replace(sessions, table("Lock sessions", ["ID", "Name", "Behavior", "TTL", "Checks", ""],
      list.map((s) => row(s.ID, s.Name || "", s.Behavior, s.TTL || "", (s.NodeChecks || s.Checks || []).join(", "),
        canInvalidate ? h("button", { type: "button", class: "danger small", "aria-label": `Invalidate session ${s.ID}`,
          onclick: () => invalidate(sessions, s) }, "Invalidate") : "")),
      "No lock sessions on this node."));
  };
  api.can("session", "write", name).then((ok) => { canInvalidate = ok; drawSessions(); });
  const stopSessions = api.watch(`/v1/session/node/${api.encodePath(name)}`, {}, (list) => {
    sessionList = list || [];
    drawSessions();
  }, (err) => replace(sessions, alert("error", api.explain(err))));
  return () => { stopInfo(); stopSessions(); };
}

async function invalidate(el, s) {
  const ok = await confirmDialog("Invalidate session?",
    `Session ${s.ID} will be destroyed; locks it holds are released (behavior: ${s.Behavior}).`, "Invalidate");
  if (!ok) return;
  try { await api.put(`/v1/session/destroy/${encodeURIComponent(s.ID)}`); } catch (err) {
    el.prepend(alert("error", api.explain(err)));
  }
}

async function loadRtt(el, name, ctx) {
  try {
    const coords = (await api.get("/v1/coordinate/nodes")) || [];
    const here = ctx.self?.Config?.NodeName;
    const mine = coords.find((c) => c.Node === name);
    const other = coords.find((c) => c.Node === here);
    if (!mine) { replace(el, h("p", { class: "muted" }, "This node has no network coordinate yet.")); return; }
    if (name === here) { replace(el, h("p", {}, "This is the agent serving the UI.")); return; }
    const d = rtt(mine.Coord, other?.Coord);
    replace(el, d === null
      ? h("p", { class: "muted" }, `No coordinate for this agent (${here || "unknown"}) in this datacenter to compare with.`)
      : h("p", {}, `Estimated round trip to ${here}: `, h("strong", { id: "rtt-value" }, `${(d * 1000).toFixed(2)} ms`)));
  } catch (err) {
    replace(el, alert("warning", api.explain(err)));
  }
}
