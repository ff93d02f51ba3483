// Intentions: the list (/v1/connect/intentions, live), create allow/deny and delete
// through the exact API (source and destination names, Consul 1.9+).

import * as api from "../api.js";
import { h, replace, badge, table, row, alert, field, confirmDialog } from "../dom.js";

export function render(root) {
  const listing = h("div", { id: "intentions-list" });
  const status = h("div");
  const src = h("input", { type: "text", id: "ixn-source", autocomplete: "off" });
  const dst = h("input", { type: "text", id: "ixn-destination", autocomplete: "off" });
  const action = h("select", { id: "ixn-action" }, h("option", { value: "allow" }, "Allow"), h("option", { value: "deny" }, "Deny"));
  const desc = h("input", { type: "text", id: "ixn-description", autocomplete: "off" });
  const form = h("form", { class: "card", "aria-label": "Create intention", onsubmit: async (e) => {
    e.preventDefault();
    const source = src.value.trim();
    const destination = dst.value.trim();
    if (!source || !destination) { replace(status, alert("error", "Both a source and a destination service are needed (* for any).")); return; }
    try {
      await api.put("/v1/connect/intentions/exact", { SourceType: "consul", Action: action.value, Description: desc.value },
        { params: { source, destination } });
      replace(status, alert("success", `Saved: ${source} → ${destination} (${action.value}).`));
      src.value = ""; dst.value = ""; desc.value = "";
    } catch (err) { replace(status, alert("error", api.explain(err))); }
  } },
  h("h2", {}, "Create or update"),
  h("div", { class: "grid2" }, field("Source service", src, "A service name, or * for every service."),
    field("Destination service", dst, "A service name, or * for every service.")),
  h("div", { class: "grid2" }, field("Action", action), field("Description", desc)),
  status, h("div", { class: "actions" }, h("button", { type: "submit", id: "ixn-save" }, "Save intention")));
  replace(root, h("h1", {}, "Intentions"), form, h("h2", {}, "All intentions"), listing);
  let writable = true;
  api.can("intention", "write", "*").then((ok) => {
    writable = ok;
    if (!ok) form.replaceWith(h("p", { class: "readonly-note", id: "ixn-readonly" }, "Read-only: your token may not write intentions."));
    listing.querySelectorAll("button.danger").forEach((b) => { b.hidden = !ok; });
  });

  async function remove(i) {
    const ok = await confirmDialog("Delete intention?", `${i.SourceName} → ${i.DestinationName} (${i.Action || "L7 permissions"}) will be deleted.`);
    if (!ok) return;
    try {
      await api.del("/v1/connect/intentions/exact", { params: { source: i.SourceName, destination: i.DestinationName } });
    } catch (err) { replace(status, alert("error", api.explain(err))); }
  }

  return api.watch("/v1/connect/intentions", {}, (list) => {
    list = list || [];
    replace(listing, table("Intentions", ["Source", "Destination", "Action", "Description", "Precedence", ""],
      list.map((i) => row(i.SourceName, i.DestinationName, badge(i.Action || "info", i.Action || "L7 permissions"),
        i.Description || "", String(i.Precedence ?? ""),
        writable && h("button", { type: "button", class: "danger small", "aria-label": `Delete intention ${i.SourceName} to ${i.DestinationName}`,
          onclick: () => remove(i) }, "Delete"))),
      "No intentions: with default-allow every service may reach every other."));
  }, (err) => replace(listing, alert("error", api.explain(err))));
}
