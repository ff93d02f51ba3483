// Hash routes: #/<page>/<segment>/...?dc=<dc>. Each segment is encodeURIComponent'd on its
// own, so a name holding "/", "%", "#", "?" or spaces is one segment and comes back intact.

export function parse(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const trailing = path.endsWith("/");
  const parts = path.split("/").filter((p, i, all) => p !== "" || i < all.length - 1);
  let segments;
  try {
    segments = parts.map(decodeURIComponent);
  } catch {
    segments = parts; // a hand-typed malformed escape: show it as written
  }
  const [page = "services", ...rest] = segments;
  return { page, rest, trailing, query };
}

// A link to a page; `dc` is carried over unless given.
export function href(page, rest = [], { trailing = false, dc } = {}) {
  const cur = parse();
  const d = dc ?? cur.query.get("dc");
  const tail = rest.map(encodeURIComponent).join("/");
  let out = `#/${encodeURIComponent(page)}${tail ? "/" + tail : ""}${trailing && tail ? "/" : ""}`;
  if (d) out += `?dc=${encodeURIComponent(d)}`;
  return out;
}

export function go(page, rest = [], opts = {}) {
  location.hash = href(page, rest, opts);
}
