// Validation for the KV code view: JSON with the browser's own parser, YAML with a small
// structural check (this UI vendors no YAML library): tab indentation, unclosed quotes and
// brackets, duplicate keys in one mapping, and indentation that follows no parent.
// Each returns null when valid, or {line, message}.

export function checkJSON(text) {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    const m = /position (\d+)/.exec(err.message);
    const line = m ? text.slice(0, Number(m[1])).split("\n").length : null;
    return { line, message: err.message };
  }
}

function stripComment(line) {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s:,[{-]/.test(line[i - 1])) quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) {
      return { text: line.slice(0, i), open: "" };
    }
  }
  return { text: line, open: quote };
}

export function checkYAML(text) {
  const lines = text.split("\n");
  const stack = [{ indent: -1, keys: new Set(), opensBlock: true }];
  let depth = 0;
  let block = null; // inside a | or > block scalar: the indent it must exceed
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n].replace(/\r$/, "");
    const lineNo = n + 1;
    if (!raw.trim() || raw.trim().startsWith("#")) continue;
    const indent = raw.length - raw.trimStart().length;
    if (block !== null) {
      if (indent > block) continue;
      block = null;
    }
    if (/^\s*\t/.test(raw)) return { line: lineNo, message: "tabs are not allowed for indentation" };
    if (raw.trim() === "---" || raw.trim() === "...") { stack.length = 1; stack[0].keys = new Set(); continue; }
    const { text: body, open } = stripComment(raw);
    if (open && depth === 0) return { line: lineNo, message: `unclosed ${open === '"' ? "double" : "single"} quote` };
    for (const c of body.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, "")) {
      if (c === "[" || c === "{") depth++;
      else if (c === "]" || c === "}") {
        depth--;
        if (depth < 0) return { line: lineNo, message: `unexpected "${c}"` };
      }
    }
    if (depth > 0) continue; // a flow collection spanning lines
    let content = body.trim();
    let at = indent;
    let dashed = false;
    while (content.startsWith("- ") || content === "-") {
      content = content.slice(2).trimStart();
      at += 2;
      dashed = true;
    }
    // A list item starts a fresh mapping; a dedent closes the mappings it leaves.
    while (stack.length > 1 && (stack[stack.length - 1].indent > at || (dashed && stack[stack.length - 1].indent === at))) stack.pop();
    if (dashed && stack[stack.length - 1].indent < at) stack[stack.length - 1].opensBlock = true;
    let top = stack[stack.length - 1];
    if (at > top.indent && !top.opensBlock && top.indent >= 0) {
      return { line: lineNo, message: "unexpected indentation (the line above opens no mapping or list)" };
    }
    if (at > top.indent) {
      top = { indent: at, keys: new Set(), opensBlock: false };
      stack.push(top);
    }
    const m = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'#][^:#]*?)\s*:(\s|$)/.exec(content);
    if (m) {
      const key = m[1];
      if (top.keys.has(key)) return { line: lineNo, message: `duplicate key ${key}` };
      top.keys.add(key);
      const rest = content.slice(m[0].length).trim();
      top.opensBlock = rest === "" || /^[|>][-+0-9]*$/.test(rest) || /^&\S+$/.test(rest);
      if (/^[|>]/.test(rest)) block = at;
    } else {
      top.opensBlock = indent !== at || content === "";
    }
  }
  if (depth > 0) return { line: lines.length, message: "unclosed [ or {" };
  return null;
}
