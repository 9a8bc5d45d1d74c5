// Renders /openapi.json as a page. Plain DOM calls only, and text is always set as text (never as
// HTML), so nothing in the spec can inject markup.
"use strict";

(function () {
  const METHODS = ["get", "post", "put", "patch", "delete"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Backticks in descriptions become <code>; everything else stays text.
  function prose(text) {
    const out = document.createDocumentFragment();
    String(text || "").split("\n\n").forEach((para) => {
      const p = el("p");
      para.split("`").forEach((part, i) => p.append(i % 2 ? el("code", {}, part) : document.createTextNode(part)));
      out.append(p);
    });
    return out;
  }

  function refName(schema) {
    return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
  }

  function typeOf(schema) {
    if (!schema) return "any";
    const ref = refName(schema);
    if (ref) {
      const link = el("a", { href: "#schema-" + ref }, ref);
      return link;
    }
    if (schema.type === "array") {
      const span = el("span", {}, "array of ");
      const inner = typeOf(schema.items);
      span.append(inner instanceof Node ? inner : document.createTextNode(inner));
      return span;
    }
    if (schema.type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") {
      const span = el("span", {}, "map of ");
      const inner = typeOf(schema.additionalProperties);
      span.append(inner instanceof Node ? inner : document.createTextNode(inner));
      return span;
    }
    let text = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "any";
    if (schema.format) text += " (" + schema.format + ")";
    if (schema.enum) text += ": " + schema.enum.join(", ");
    return text;
  }

  function propertiesTable(schema) {
    const props = (schema && schema.properties) || {};
    const names = Object.keys(props);
    if (!names.length) return el("p", { class: "muted" }, "No fields.");
    const table = el("table", {}, el("tr", {}, el("th", {}, "Field"), el("th", {}, "Type"), el("th", {}, "Description")));
    for (const name of names) {
      const prop = props[name];
      const description = (prop.description || "") + (prop.readOnly ? " (read-only)" : "");
      table.append(el("tr", {}, el("td", {}, el("code", {}, name)), el("td", {}, typeOf(prop)), el("td", {}, description)));
    }
    return table;
  }

  function schemaBlock(schema) {
    if (!schema) return el("p", { class: "muted" }, "None.");
    if (refName(schema)) return el("p", {}, typeOf(schema));
    if (schema.type === "object" && schema.properties) return propertiesTable(schema);
    return el("p", {}, typeOf(schema));
  }

  function operation(path, method, op) {
    const body = el("div", { class: "op-body" });
    if (op.description) body.append(prose(op.description));
    body.append(el("p", { class: "muted" }, "operationId ", el("code", {}, op.operationId)));
    const params = op.parameters || [];
    if (params.length) {
      body.append(el("h4", {}, "Parameters"));
      const table = el("table", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Description")));
      for (const p of params) {
        table.append(el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in + (p.required ? " (required)" : "")), el("td", {}, typeOf(p.schema)), el("td", {}, p.description || "")));
      }
      body.append(table);
    }
    if (op.requestBody) {
      body.append(el("h4", {}, "Request body (application/json)"));
      body.append(schemaBlock(op.requestBody.content["application/json"].schema));
    }
    const ok = op.responses && op.responses["200"];
    if (ok) {
      body.append(el("h4", {}, "Response"));
      if (ok["x-message-schema"]) {
        body.append(el("p", {}, ok.description));
        body.append(el("p", {}, "Each message: ", typeOf(ok["x-message-schema"])));
      } else {
        body.append(schemaBlock(ok.content["application/json"].schema));
      }
    }
    const errors = Object.keys(op.responses || {}).filter((s) => s !== "200");
    body.append(el("p", { class: "muted" }, "Errors (problem+json): " + errors.join(", ")));
    const auth = op.security && op.security.length ? "bearer token or API key" : "public";
    const summary = el("summary", {}, el("span", { class: "verb " + method }, method.toUpperCase()), el("span", { class: "path" }, path), el("span", {}, op.summary || ""), el("span", { class: "lock" }, auth));
    const details = el("details", { class: "op", id: "op-" + op.operationId }, summary, body);
    details.dataset.search = [method, path, op.operationId, op.summary || "", (op.tags || []).join(" ")].join(" ").toLowerCase();
    return details;
  }

  function render(spec) {
    document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
    document.title = spec.info.title;
    document.getElementById("intro").append(prose(spec.info.description));
    const byTag = new Map();
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const method of METHODS) {
        if (!item[method]) continue;
        const tag = (item[method].tags || ["other"])[0];
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([path, method, item[method]]);
      }
    }
    const tagInfo = new Map((spec.tags || []).map((t) => [t.name, t]));
    const ops = document.getElementById("operations");
    const toc = document.getElementById("toc");
    ops.textContent = "";
    const tocList = el("ul");
    for (const [tag, list] of byTag) {
      const section = el("section", { id: "tag-" + tag, class: "tag" }, el("h2", {}, tag));
      const info = tagInfo.get(tag);
      if (info && info.description) section.append(prose(info.description));
      for (const [path, method, op] of list) section.append(operation(path, method, op));
      ops.append(section);
      tocList.append(el("li", {}, el("a", { href: "#tag-" + tag }, tag), " (" + list.length + ")"));
    }
    toc.append(el("h2", {}, "Services"), tocList);
    const schemas = document.getElementById("schemas");
    schemas.append(el("h2", {}, "Schemas"));
    for (const [name, schema] of Object.entries((spec.components && spec.components.schemas) || {})) {
      const block = el("div", { id: "schema-" + name }, el("h3", {}, name));
      if (schema.description) block.append(prose(schema.description));
      block.append(schemaBlock(schema));
      schemas.append(block);
    }
    document.getElementById("filter").addEventListener("input", (event) => {
      const needle = event.target.value.trim().toLowerCase();
      for (const details of document.querySelectorAll("details.op")) {
        details.classList.toggle("hidden", needle !== "" && !details.dataset.search.includes(needle));
      }
    });
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  fetch("/openapi.json")
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(render)
    .catch((err) => {
      const ops = document.getElementById("operations");
      ops.textContent = "Could not load /openapi.json: " + err.message;
    });
})();
