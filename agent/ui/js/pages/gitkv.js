// gitkv: what the GitOps tool keeps in sync here. For each ownership ledger
// (gitkv/state/<name>, see gitkv/ledger.py: plain JSON, or gzipped parts named in its
// header) and status record (gitkv/status/<name>, written by the watcher: commit, state,
// message, time): the last applied commit, the state, the managed resources, and drift —
// managed keys that are gone, or were written after the ledger (every apply that changes a
// key rewrites the ledger in the same or a later transaction, so a newer key was changed by
// someone else).

import * as api from "../api.js";
import { h, replace, badge, table, row, alert, dl, time } from "../dom.js";
import { href } from "../router.js";

const STATE = "gitkv/state/";
const STATUS = "gitkv/status/";
const DRIFT_LIMIT = 5000;

export function render(root) {
  const body = h("div", { id: "gitkv-body" });
  replace(root, h("h1", {}, "gitkv"),
    h("p", { class: "muted" }, "Ledgers and sync status that gitkv keeps in this datacenter's KV store."), body);
  let seq = 0;
  let keys = [];
  // Drift moves with the managed keys, not with gitkv/: one blocking query per ledger's
  // managed prefix re-reads the page when one of them changes.
  const driftWatches = new Map();
  const redraw = async () => {
    const mine = ++seq;
    const { out, prefixes } = await load(keys);
    if (mine !== seq) return;
    replace(body, out);
    for (const [p, stop] of driftWatches) if (!prefixes.has(p)) { stop(); driftWatches.delete(p); }
    for (const p of prefixes) {
      if (driftWatches.has(p)) continue;
      let first = true;
      driftWatches.set(p, api.watch(`/v1/kv/${api.encodePath(p)}`, { keys: true }, () => {
        if (first) first = false; else redraw();
      }));
    }
  };
  const stop = api.watch("/v1/kv/gitkv/", { keys: true }, (got) => { keys = got || []; redraw(); },
    (err) => replace(body, alert("error", api.explain(err))));
  return () => { stop(); for (const s of driftWatches.values()) s(); };
}

async function load(keys) {
  const names = new Set();
  for (const k of keys) {
    if (k.startsWith(STATE) && !k.slice(STATE.length).includes("/")) names.add(k.slice(STATE.length));
    if (k.startsWith(STATUS) && !k.slice(STATUS.length).includes("/")) names.add(k.slice(STATUS.length));
  }
  const prefixes = new Set();
  if (!names.size) {
    return { out: h("p", { class: "empty" }, "gitkv manages nothing in this datacenter yet (no gitkv/state/ or gitkv/status/ keys)."), prefixes };
  }
  const sections = [];
  for (const name of [...names].sort()) sections.push(await ledgerSection(name, prefixes));
  return { out: sections, prefixes };
}

async function readKey(key) {
  const got = await api.get(`/v1/kv/${api.encodePath(key)}`, { missingOk: true });
  return got ? got[0] : null;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function sha256hex(bytes) {
  if (!crypto.subtle) return null; // not a secure context: the digest is not checked here
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// The ledger as gitkv wrote it, or {error}.
export async function readLedger(entry) {
  let doc;
  try { doc = JSON.parse(api.decodeValue(entry.Value).text ?? ""); } catch (err) { return { error: `not JSON: ${err.message}` }; }
  if (!doc || doc.format !== "gitkv-ledger") return { error: "not a gitkv ownership ledger" };
  if (!doc.parts) return { ledger: doc };
  const chunks = [];
  for (const part of doc.parts) {
    const p = await readKey(part);
    if (!p) return { error: `ledger part ${part} is missing` };
    chunks.push(api.decodeValue(p.Value).bytes);
  }
  const blob = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) { blob.set(c, off); off += c.length; }
  const digest = await sha256hex(blob);
  if (digest && digest !== doc.sha256) return { error: "ledger parts do not match their digest" };
  try {
    return { ledger: JSON.parse(new TextDecoder().decode(await gunzip(blob))) };
  } catch (err) {
    return { error: `ledger parts unreadable: ${err.message}` };
  }
}

function commonPrefix(keys) {
  if (!keys.length) return "";
  let p = keys[0];
  for (const k of keys) while (!k.startsWith(p)) p = p.slice(0, -1);
  return p.slice(0, p.lastIndexOf("/") + 1);
}

async function drift(kvKeys, ledgerIndex) {
  if (!kvKeys.length) return { checked: true, rows: [] };
  if (kvKeys.length > DRIFT_LIMIT) return { checked: false, rows: [] };
  const prefix = commonPrefix(kvKeys);
  const live = (await api.get(`/v1/kv/${api.encodePath(prefix)}`, { params: { recurse: true }, missingOk: true })) || [];
  const byKey = new Map(live.map((e) => [e.Key, e]));
  const rows = [];
  for (const k of kvKeys) {
    const e = byKey.get(k);
    if (!e) rows.push([k, "deleted"]);
    else if (e.ModifyIndex > ledgerIndex) rows.push([k, `changed after the last apply (ModifyIndex ${e.ModifyIndex} > ledger ${ledgerIndex})`]);
  }
  return { checked: true, rows };
}

async function ledgerSection(name, prefixes) {
  const parts = [h("h2", {}, name)];
  const [entry, statusEntry] = await Promise.all([readKey(STATE + name), readKey(STATUS + name)]);
  let status = null;
  if (statusEntry) {
    try { status = JSON.parse(api.decodeValue(statusEntry.Value).text ?? ""); } catch { status = null; }
  }
  let ledger = null;
  if (entry) {
    const got = await readLedger(entry);
    if (got.error) parts.push(alert("error", `Ledger ${STATE}${name}: ${got.error}`));
    ledger = got.ledger || null;
  }
  parts.push(dl([
    ["Last applied commit", h("code", { class: "commit" }, ledger?.revision || "(none recorded)")],
    ["Spec digest", ledger?.digest || ""],
    ["Ledger key", entry ? h("a", { href: href("kv", (STATE + name).split("/")) }, STATE + name) : "(missing)"],
    ...(status ? [
      ["Watcher state", badge(status.state, status.state)],
      ["Status commit", h("code", {}, status.commit || "")],
      ["Message", status.message || ""],
      ["Changes", String(status.changes ?? "")],
      ["Time", time(status.time)],
    ] : [["Watcher state", "no status written (gitkv apply without gitkv watch)"]]),
  ]));
  if (ledger) {
    const managed = ledger.managed || {};
    parts.push(h("h3", {}, "Managed resources"),
      table(`Resources managed by ${name}`, ["Kind", "Count", "IDs"],
        Object.entries(managed).map(([kind, ids]) => row(kind, String(ids.length),
          h("details", {}, h("summary", {}, ids.slice(0, 3).join(", ") + (ids.length > 3 ? ", …" : "")),
            h("ul", {}, ids.slice(0, 500).map((i) => h("li", {}, kind === "kv" ? h("a", { href: href("kv", i.split("/")) }, i) : i)))))),
        "The ledger lists no resources."));
    const kv = managed.kv || [];
    if (kv.length && kv.length <= DRIFT_LIMIT) prefixes.add(commonPrefix(kv));
    const d = await drift(kv, entry.ModifyIndex);
    parts.push(h("h3", {}, "Drift"));
    if (!d.checked) parts.push(h("p", { class: "muted" }, `More than ${DRIFT_LIMIT} managed keys: drift is not checked here (gitkv plan shows it).`));
    else parts.push(table(`Drift of ${name}`, ["Key", "Drift"], d.rows.map(([k, why]) => row(k, why)),
      "No drift: every managed key is as the last apply left it."));
  }
  return h("section", { class: "card ledger", "data-ledger": name }, parts);
}
