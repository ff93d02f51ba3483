// Log in with an ACL token. The SecretID is kept only in this browser (localStorage) and
// sent as X-Consul-Token; it is checked with /v1/acl/token/self before it is kept.

import * as api from "../api.js";
import { h, replace, alert, field } from "../dom.js";
import { href } from "../router.js";

export function render(root, route, ctx) {
  const secret = h("input", { type: "password", id: "login-token", autocomplete: "off", required: true });
  const status = h("div");
  replace(root, h("h1", {}, "Log in"),
    ctx.reason ? alert("info", ctx.reason) : null,
    !ctx.aclEnabled ? alert("info", "ACLs are disabled on this agent: no token is needed.") : null,
    h("form", { class: "card", "aria-label": "Log in with a token", onsubmit: async (e) => {
      e.preventDefault();
      const value = secret.value.trim();
      if (!value) { replace(status, alert("error", "Enter a token's SecretID.")); return; }
      const before = api.token();
      api.setToken(value);
      try {
        await api.get("/v1/acl/token/self");
      } catch (err) {
        api.setToken(before);
        replace(status, alert("error", err.status === 403
          ? "This token is not valid here (ACL not found): check the SecretID."
          : api.explain(err)));
        return;
      }
      ctx.self = null; // read again with the new token
      await ctx.refreshLogin();
      const target = href("services");
      if (location.hash === target) ctx.route();
      else location.hash = target;
    } },
    field("Token SecretID", secret, "Stored only in this browser; Log out removes it."),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "login-submit" }, "Log in"))));
  secret.focus();
}
