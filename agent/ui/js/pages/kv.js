// Key/Value: folders (?keys&separator=/, live) with breadcrumbs; keys with a code view
// (text, JSON, YAML, validated), flags and the lock session; create, edit with CAS on
// ModifyIndex (a stale edit is refused and shown, never overwritten) and delete (a folder
// recursively, after a confirmation).

import * as api from "../api.js";
import { h, replace, table, row, alert, dl, field, confirmDialog } from "../dom.js";
import { href, go } from "../router.js";
import { checkJSON, checkYAML } from "../codecheck.js";

export function render(root, route) {
  const segments = route.rest;
  if (!segments.length || route.trailing) return folder(root, segments.length ? `${segments.join("/")}/` : "");
  return keyView(root, segments.join("/"));
}

const kvPath = (key) => `/v1/kv/${api.encodePath(key)}`;
const segs = (path) => path.replace(/\/$/, "").split("/");

function crumbs(path, isFolder) {
  const parts = path ? segs(path) : [];
  const items = [h("li", {}, h("a", { href: href("kv", [], { trailing: true }) + "", "aria-label": "Key/Value root" }, "(root)"))];
  parts.forEach((p, i) => {
    const last = i === parts.length - 1;
    const label = p === "" ? "(empty)" : p;
    items.push(h("li", {}, last
      ? h("span", { "aria-current": "page" }, label + (isFolder ? "/" : ""))
      : h("a", { href: href("kv", parts.slice(0, i + 1), { trailing: true }) }, label)));
  });
  return h("nav", { "aria-label": "Breadcrumb" }, h("ol", { class: "crumbs" }, items));
}

function folder(root, prefix) {
  const listing = h("div", { id: "kv-list" });
  const formBox = h("div");
  const title = prefix ? segs(prefix).at(-1) + "/" : "Key/Value";
  replace(root, crumbs(prefix, true), h("h1", {}, title),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "kv-create", onclick: () => createForm(formBox, prefix) }, "Create"),
      prefix ? h("button", { type: "button", class: "danger", id: "kv-delete-folder",
        onclick: () => deleteFolder(listing, prefix) }, "Delete folder") : null),
    formBox, listing);
  api.can("key", "write", prefix).then((ok) => {
    if (ok) return;
    root.querySelector(".actions")?.replaceChildren(
      h("p", { class: "readonly-note", id: "kv-readonly" }, "Read-only: your token may not write keys here."));
  });
  return api.watch(kvPath(prefix), { keys: true, separator: "/" }, (keys) => {
    const list = (keys || []).filter((k) => k !== prefix);
    const rows = list.map((k) => {
      const name = k.slice(prefix.length);
      const isFolder = k.endsWith("/");
      return row(h("a", { href: href("kv", segs(k), { trailing: isFolder }) }, name), isFolder ? "folder" : "key");
    });
    replace(listing, table("Keys", ["Name", "Type"], rows,
      prefix && keys === null ? `Folder "${prefix}" not found (no keys under it).` : "No keys here yet."));
  }, (err) => replace(listing, alert("error", api.explain(err))));
}

function codeSelect(initial, id) {
  return h("select", { id }, [["text", "Text"], ["json", "JSON"], ["yaml", "YAML"]].map(([v, l]) =>
    h("option", { value: v, selected: v === initial }, l)));
}

function guessCode(text) {
  const t = text.trim();
  if ((t.startsWith("{") || t.startsWith("[")) && !checkJSON(t)) return "json";
  return "text";
}

// Wires validation between a textarea and its code select; returns a getter for the error.
function validation(area, code, out) {
  const check = () => {
    const kind = code.value;
    const problem = kind === "json" ? checkJSON(area.value) : kind === "yaml" ? checkYAML(area.value) : null;
    area.classList.toggle("invalid", Boolean(problem));
    area.setAttribute("aria-invalid", problem ? "true" : "false");
    out.textContent = problem ? `Invalid ${kind.toUpperCase()}${problem.line ? ` at line ${problem.line}` : ""}: ${problem.message}` : "";
    return problem;
  };
  area.addEventListener("input", check);
  code.addEventListener("change", check);
  return check;
}

function flagsValue(input) {
  const v = input.value.trim() || "0";
  if (!/^\d+$/.test(v) || BigInt(v) > 18446744073709551615n) return null;
  return v;
}

function createForm(box, prefix) {
  const name = h("input", { type: "text", id: "kv-new-name", autocomplete: "off", required: true });
  const area = h("textarea", { id: "kv-new-value" });
  const code = codeSelect("text", "kv-new-code");
  const flags = h("input", { type: "number", id: "kv-new-flags", min: "0", value: "0" });
  const problem = h("p", { class: "hint", role: "alert", id: "kv-new-problem" });
  const status = h("div", { id: "kv-new-status" });
  const check = validation(area, code, problem);
  const form = h("form", { class: "card", "aria-label": "Create key or folder", onsubmit: async (e) => {
    e.preventDefault();
    const rel = name.value;
    if (!rel) { replace(status, alert("error", "Give the key a name.")); name.focus(); return; }
    if (rel.startsWith("/")) { replace(status, alert("error", "Key names may not start with \"/\".")); name.focus(); return; }
    const isFolder = rel.endsWith("/");
    if (!isFolder && check()) { area.focus(); return; }
    const f = flagsValue(flags);
    if (f === null) { replace(status, alert("error", "Flags must be a whole number from 0 to 18446744073709551615.")); return; }
    const key = prefix + rel;
    try {
      const ok = await api.put(kvPath(key), isFolder ? "" : api.encodeValue(area.value), { params: { cas: 0, flags: f === "0" ? undefined : f } });
      if (ok !== true) { replace(status, alert("error", `"${key}" already exists: nothing was written. Open it to edit it.`)); return; }
      go("kv", segs(key), { trailing: isFolder });
    } catch (err) { replace(status, alert("error", api.explain(err))); }
  } },
  h("h2", {}, "Create in ", prefix || "(root)"),
  field("Name", name, "Relative to this folder. End it with / to create a folder."),
  h("div", { class: "toolbar" }, field("Code", code), field("Flags", flags)),
  field("Value", area), problem, status,
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Save"),
    h("button", { type: "button", class: "secondary", onclick: () => replace(box) }, "Cancel")));
  replace(box, form);
  name.focus();
}

async function deleteFolder(listing, prefix) {
  let count = 0;
  try { count = ((await api.get(kvPath(prefix), { params: { keys: true }, missingOk: true })) || []).length; } catch { /* counted as 0 */ }
  const ok = await confirmDialog(`Delete folder ${prefix}?`,
    `This deletes "${prefix}" and every key under it (${count} key${count === 1 ? "" : "s"}). This cannot be undone.`);
  if (!ok) return;
  try {
    await api.del(kvPath(prefix), { params: { recurse: true } });
    const parent = segs(prefix).slice(0, -1);
    go("kv", parent, { trailing: true });
  } catch (err) { listing.prepend(alert("error", api.explain(err))); }
}

function keyView(root, key) {
  const body = h("div", { id: "kv-key" });
  replace(root, crumbs(key, false), h("h1", {}, segs(key).at(-1) || key), body);
  let loaded = null; // the entry the form was filled from
  let form = null;
  const notice = h("div", { "aria-live": "polite" });

  function fill(entry) {
    loaded = entry;
    const value = api.decodeValue(entry.Value);
    const binary = value.text === null;
    const area = h("textarea", { id: "kv-value", readOnly: binary, value: binary ? entry.Value : value.text });
    const code = codeSelect(binary ? "text" : guessCode(value.text), "kv-code");
    const flags = h("input", { type: "number", id: "kv-flags", min: "0", value: String(entry.Flags) });
    const problem = h("p", { class: "hint", role: "alert", id: "kv-problem" });
    const status = h("div", { id: "kv-status" });
    const check = validation(area, code, problem);
    check();
    const session = h("div");
    if (entry.Session) showSession(session, entry.Session);
    form = h("form", { class: "card", "aria-label": `Edit ${key}`, onsubmit: async (e) => {
      e.preventDefault();
      if (binary) return;
      if (check()) { area.focus(); return; }
      const f = flagsValue(flags);
      if (f === null) { replace(status, alert("error", "Flags must be a whole number from 0 to 18446744073709551615.")); return; }
      try {
        const ok = await api.put(kvPath(key), api.encodeValue(area.value), { params: { cas: loaded.ModifyIndex, flags: f } });
        if (ok === true) {
          replace(status, alert("success", "Saved."));
          const fresh = await api.get(kvPath(key), { missingOk: true });
          if (fresh) loaded = fresh[0];
          replace(notice);
          return;
        }
        const now = await api.get(kvPath(key), { missingOk: true });
        replace(status, alert("error",
          h("strong", {}, "Conflict: not saved. "),
          now ? `Someone else changed "${key}" after you opened it (ModifyIndex ${loaded.ModifyIndex} → ${now[0].ModifyIndex}). Your text is still here; load the latest value to see theirs.`
            : `"${key}" was deleted after you opened it. Your text is still here.`,
          h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "kv-reload", onclick: reload }, "Load latest (discards your edit)"))));
      } catch (err) { replace(status, alert("error", api.explain(err))); }
    } },
    dl([["ModifyIndex", String(entry.ModifyIndex)], ["CreateIndex", String(entry.CreateIndex)], ["LockIndex", String(entry.LockIndex)]]),
    session,
    binary ? alert("info", `This value is binary (${value.bytes.length} bytes), shown as base64 and not editable here.`) : null,
    h("div", { class: "toolbar" }, field("Code", code), field("Flags", flags)),
    field("Value", area), problem, status,
    h("div", { class: "actions" },
      binary ? null : h("button", { type: "submit", id: "kv-save" }, "Save"),
      h("button", { type: "button", class: "danger", id: "kv-delete", onclick: () => deleteKey(status) }, "Delete")));
    replace(body, notice, form);
    api.can("key", "write", key).then((ok) => {
      if (ok) return;
      area.readOnly = true;
      flags.readOnly = true;
      form.querySelector(".actions").replaceChildren(
        h("p", { class: "readonly-note", id: "kv-readonly" }, "Read-only: your token may not write this key."));
    });
  }

  async function reload() {
    const fresh = await api.get(kvPath(key), { missingOk: true });
    if (fresh) fill(fresh[0]); else replace(body, h("p", { class: "empty" }, `Key "${key}" not found.`));
  }

  async function deleteKey(status) {
    const ok = await confirmDialog(`Delete ${key}?`, `The key "${key}" will be deleted. This cannot be undone.`);
    if (!ok) return;
    try {
      const done = await api.del(kvPath(key), { params: { cas: loaded.ModifyIndex } });
      if (done !== true) {
        replace(status, alert("error", h("strong", {}, "Conflict: not deleted. "), `"${key}" changed after you opened it; load the latest value first.`,
          h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: reload }, "Load latest"))));
        return;
      }
      go("kv", segs(key).slice(0, -1), { trailing: true });
    } catch (err) { replace(status, alert("error", api.explain(err))); }
  }

  // Live: the first answer fills the form; later changes are announced, never pasted over
  // what the operator is typing.
  return api.watch(kvPath(key), {}, (entries) => {
    if (!entries) {
      if (!loaded) replace(body, h("p", { class: "empty" }, `Key "${key}" not found.`));
      else replace(notice, alert("warning", `"${key}" was deleted by someone else.`));
      return;
    }
    const entry = entries[0];
    if (!loaded) fill(entry);
    else if (entry.ModifyIndex !== loaded.ModifyIndex) {
      replace(notice, alert("warning", `"${key}" changed since you opened it (ModifyIndex ${entry.ModifyIndex}). Saving now will be refused.`,
        h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: reload }, "Load latest"))));
    } else replace(notice);
  }, (err) => replace(body, alert("error", api.explain(err))));
}

async function showSession(el, id) {
  replace(el, alert("info", `Locked by session ${id}.`));
  try {
    const info = await api.get(`/v1/session/info/${encodeURIComponent(id)}`);
    const s = info && info[0];
    if (s) replace(el, alert("info", `Locked by session ${id}${s.Name ? ` (${s.Name})` : ""} on node `, h("a", { href: href("nodes", [s.Node]) }, s.Node), "."));
  } catch { /* the id alone is still shown */ }
}
