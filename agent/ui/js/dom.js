// DOM helpers. Data always goes in as text (textContent, attributes), never as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "disabled" || k === "readOnly") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const STATUS_RANK = { passing: 0, warning: 1, critical: 2 };
export const worst = (statuses) =>
  statuses.reduce((w, s) => ((STATUS_RANK[s] ?? 0) > (STATUS_RANK[w] ?? 0) ? s : w), "passing");
export const statusRank = (s) => STATUS_RANK[s] ?? 0;

export function badge(status, label) {
  return h("span", { class: `badge ${status}` }, label ?? status);
}

export function tags(list) {
  return (list || []).map((t) => h("span", { class: "tag" }, t));
}

// A table in a scrolling wrapper (narrow screens scroll it, the page does not).
export function table(caption, headers, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h("table", {},
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

export function row(...cells) {
  return h("tr", {}, cells.map((c) => h("td", {}, c)));
}

export function alert(kind, ...children) {
  return h("div", { class: `alert ${kind}`, role: kind === "error" ? "alert" : "status" }, children);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl);
}

export function dl(pairs) {
  return h("dl", { class: "meta" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// A modal confirmation (a real <dialog>: focus moves in, Escape cancels).
export function confirmDialog(title, message, action = "Delete") {
  return new Promise((resolve) => {
    const dlg = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, message),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => dlg.close("cancel") }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: () => dlg.close("ok") }, action)));
    dlg.addEventListener("close", () => { dlg.remove(); resolve(dlg.returnValue === "ok"); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}
