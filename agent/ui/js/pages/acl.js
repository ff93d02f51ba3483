// Access controls: tokens, policies (with a rules editor), roles and auth methods — list,
// create, edit, delete through /v1/acl/*. A token without acl:write sees everything
// read-only (inputs read-only, no save or delete); a 403 says which permission is missing.

import * as api from "../api.js";
import { h, replace, table, row, alert, field, confirmDialog, tags } from "../dom.js";
import { href, go } from "../router.js";

const names = (list) => (list || []).map((x) => x.Name || x.ID).filter(Boolean);
const parseNames = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

const KINDS = {
  tokens: {
    title: "Tokens", one: "token", list: "/v1/acl/tokens", item: "/v1/acl/token", id: "AccessorID",
    label: (t) => t.Description || t.AccessorID,
    columns: ["Accessor ID", "Description", "Policies", "Roles", "Scope"],
    cells: (t) => [t.AccessorID, t.Description || "", tags(names(t.Policies)), tags(names(t.Roles)), t.Local ? "local" : "global"],
    fields: [
      ["Description", "text"], ["Policies", "names", "Policy names, comma separated."],
      ["Roles", "names", "Role names, comma separated."], ["Local", "bool", "Valid in this datacenter only."],
    ],
  },
  policies: {
    title: "Policies", one: "policy", list: "/v1/acl/policies", item: "/v1/acl/policy", id: "ID",
    label: (p) => p.Name,
    columns: ["Name", "Description", "Datacenters"],
    cells: (p) => [p.Name, p.Description || "", (p.Datacenters || []).join(", ") || "all"],
    fields: [
      ["Name", "text"], ["Description", "text"],
      ["Rules", "code", "HCL or JSON rules, e.g. key_prefix \"app/\" { policy = \"read\" }"],
      ["Datacenters", "list", "Comma separated; empty for every datacenter."],
    ],
  },
  roles: {
    title: "Roles", one: "role", list: "/v1/acl/roles", item: "/v1/acl/role", id: "ID",
    label: (r) => r.Name,
    columns: ["Name", "Description", "Policies"],
    cells: (r) => [r.Name, r.Description || "", tags(names(r.Policies))],
    fields: [["Name", "text"], ["Description", "text"], ["Policies", "names", "Policy names, comma separated."]],
  },
  "auth-methods": {
    title: "Auth methods", one: "auth method", list: "/v1/acl/auth-methods", item: "/v1/acl/auth-method", id: "Name",
    label: (m) => m.DisplayName || m.Name,
    columns: ["Name", "Type", "Display name", "Description"],
    cells: (m) => [m.Name, m.Type, m.DisplayName || "", m.Description || ""],
    fields: [
      ["Name", "text"], ["Type", "text", "jwt, oidc or kubernetes."], ["DisplayName", "text"], ["Description", "text"],
      ["MaxTokenTTL", "text", "A duration such as 1h; empty for none."],
      ["Config", "json", "The method's configuration, as JSON."],
    ],
  },
};

export function render(root, route, ctx) {
  if (!ctx.aclEnabled) {
    replace(root, h("h1", {}, "Access controls"), h("p", { class: "empty" }, "ACLs are disabled on this agent: there are no tokens, policies or roles to manage."));
    return null;
  }
  const [kind = "tokens", id] = route.rest;
  const spec = KINDS[kind];
  const tabs = h("nav", { "aria-label": "Access control sections", class: "actions" },
    Object.entries(KINDS).map(([k, s]) => h("a", { class: `button small ${k === kind ? "" : "secondary"}`,
      href: href("acl", [k]), "aria-current": k === kind ? "page" : undefined }, s.title)));
  const body = h("div", { id: "acl-body" });
  replace(root, h("h1", {}, spec ? `Access controls: ${spec.title}` : "Access controls"), tabs, body);
  if (!spec) { replace(body, h("p", { class: "empty" }, "No such section.")); return null; }
  api.can("acl", "write").then((writable) => (id ? editor(body, kind, spec, id, writable) : list(body, kind, spec, writable)));
  return null;
}

async function list(body, kind, spec, writable) {
  try {
    const items = (await api.get(spec.list)) || [];
    replace(body,
      writable ? h("div", { class: "actions" }, h("a", { class: "button", id: "acl-new", href: href("acl", [kind, "new"]) }, `Create ${spec.one}`))
        : h("p", { class: "readonly-note", id: "acl-readonly" }, "Read-only: your token has no acl:write permission."),
      table(spec.title, spec.columns, items.map((it) => {
        const cells = spec.cells(it);
        cells[0] = h("a", { href: href("acl", [kind, it[spec.id]]) }, cells[0]);
        return row(...cells);
      }), `No ${spec.title.toLowerCase()}.`));
  } catch (err) {
    replace(body, alert("error", api.explain(err)));
  }
}

function input(type, value, readOnly) {
  if (type === "bool") return h("input", { type: "checkbox", checked: Boolean(value), disabled: readOnly });
  if (type === "code" || type === "json") {
    return h("textarea", { readOnly, value: type === "json" ? JSON.stringify(value || {}, null, 2) : (value || "") });
  }
  const text = type === "names" ? names(value).join(", ") : type === "list" ? (value || []).join(", ") : (value ?? "");
  return h("input", { type: "text", readOnly, value: String(text), autocomplete: "off" });
}

function collect(spec, inputs) {
  const out = {};
  for (const [name, type] of spec.fields) {
    const el = inputs[name];
    if (type === "bool") out[name] = el.checked;
    else if (type === "names") out[name] = parseNames(el.value).map((n) => ({ Name: n }));
    else if (type === "list") out[name] = parseNames(el.value);
    else if (type === "json") {
      try { out[name] = el.value.trim() ? JSON.parse(el.value) : {}; } catch (err) { throw new Error(`${name} is not valid JSON: ${err.message}`); }
    } else if (el.value !== "" || name !== "MaxTokenTTL") out[name] = el.value;
  }
  return out;
}

async function editor(body, kind, spec, id, writable) {
  const creating = id === "new";
  let item = {};
  if (creating && !writable) { replace(body, alert("error", "Your token has no acl:write permission: it cannot create this.")); return; }
  if (!creating) {
    try {
      item = await api.get(`${spec.item}/${encodeURIComponent(id)}`, { missingOk: true });
      if (!item) { replace(body, h("p", { class: "empty" }, `${spec.one} "${id}" not found.`)); return; }
    } catch (err) { replace(body, alert("error", api.explain(err))); return; }
  }
  const readOnly = !writable;
  const inputs = {};
  const status = h("div", { id: "acl-status" });
  const form = h("form", { class: "card", "aria-label": `${creating ? "Create" : "Edit"} ${spec.one}`, onsubmit: async (e) => {
    e.preventDefault();
    if (readOnly) return;
    let payload;
    try { payload = collect(spec, inputs); } catch (err) { replace(status, alert("error", err.message)); return; }
    const path = creating ? spec.item : `${spec.item}/${encodeURIComponent(id)}`;
    replace(status, alert("info", "Saving…"));
    try {
      const saved = await api.put(path, payload);
      if (creating && kind === "tokens" && saved?.SecretID) {
        replace(body, alert("success", "Token created. Copy its SecretID now: ", h("code", { id: "new-secret" }, saved.SecretID)),
          h("p", {}, h("a", { href: href("acl", [kind, saved.AccessorID]) }, "Open the token")));
        return;
      }
      if (creating) go("acl", [kind, saved?.[spec.id] ?? ""]);
      else replace(status, alert("success", "Saved."));
    } catch (err) { replace(status, alert("error", api.explain(err))); }
  } },
  !creating && kind === "tokens" ? h("p", {}, "Accessor ID: ", h("code", {}, item.AccessorID)) : null,
  !creating && kind === "policies" ? h("p", {}, "ID: ", h("code", {}, item.ID)) : null,
  spec.fields.map(([name, type, hint]) => {
    const el = input(type, item[name], readOnly || (!creating && kind === "auth-methods" && (name === "Name" || name === "Type")));
    inputs[name] = el;
    return field(name.replace(/([a-z])([A-Z])/g, "$1 $2"), el, hint);
  }),
  status,
  readOnly ? h("p", { class: "readonly-note", id: "acl-readonly" }, "Read-only: your token has no acl:write permission.")
    : h("div", { class: "actions" },
      h("button", { type: "submit", id: "acl-save" }, creating ? "Create" : "Save"),
      creating ? null : h("button", { type: "button", class: "danger", id: "acl-delete", onclick: remove }, "Delete")));
  replace(body, h("h2", {}, creating ? `New ${spec.one}` : spec.label(item)), form);

  async function remove() {
    const ok = await confirmDialog(`Delete ${spec.one}?`, `${spec.one} "${spec.label(item)}" will be deleted. This cannot be undone.`);
    if (!ok) return;
    try {
      await api.del(`${spec.item}/${encodeURIComponent(id)}`);
      go("acl", [kind]);
    } catch (err) { replace(status, alert("error", api.explain(err))); }
  }
}
