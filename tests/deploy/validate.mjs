// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Validate Kubernetes objects (multi-document YAML, as `kubectl kustomize` prints them)
// against the Kubernetes API schemas of the npm package kubernetes-models.
//
//   node validate.mjs FILE...      (- for standard input)
//
// Each object must be a kind kubernetes-models knows, pass its JSON Schema (types,
// required fields, enumerations), and have no field the API does not define: the schemas
// accept unknown fields, which the API server drops, so a misspelt field would otherwise
// pass unnoticed. Field names come from the package's TypeScript declarations.
// Prints one line per problem and exits 1, or "ok: N objects" and exits 0.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");

// TypeScript declarations: type name -> { props: {name: type text} } or null (an alias)
const declCache = new Map();

function parseDecl(file) {
  if (declCache.has(file)) return declCache.get(file);
  const text = readFileSync(file, "utf8");
  const imports = {};
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
    const spec = m[2];
    const base = spec.startsWith(".") ? join(dirname(file), spec) : join(modules, spec);
    imports[m[1]] = `${base}.d.ts`;
  }
  // the first interface is the object's own; its members are one per line
  const body = text.match(/export interface \w+(?: extends \w+)? \{\n([\s\S]*?)\n\}/);
  let props = null;
  if (body) {
    props = {};
    let depth = 0;
    for (const line of body[1].split("\n")) {
      const m = depth === 0 && line.match(/^ {4}"([^"]+)"\??: (.*)$/);
      if (m) props[m[1]] = m[2].replace(/;$/, "");
      depth += (line.match(/\{/g) || []).length - (line.match(/\}/g) || []).length;
    }
  }
  const decl = { imports, props };
  declCache.set(file, decl);
  return decl;
}

function unknownFields(value, file, path, out) {
  if (!file || !existsSync(file) || value === null || typeof value !== "object") return;
  const { imports, props } = parseDecl(file);
  if (!props) return; // an alias such as IntOrString or Quantity
  for (const [key, child] of Object.entries(value)) {
    const type = props[key];
    const where = `${path}/${key}`;
    if (type === undefined) {
      out.push(`${where}: unknown field "${key}"`);
      continue;
    }
    let m = type.match(/^(IIoK8s\w+)$/);
    if (m) {
      unknownFields(child, imports[m[1]], where, out);
      continue;
    }
    m = type.match(/^Array<(IIoK8s\w+)>$/);
    if (m && Array.isArray(child))
      child.forEach((item, i) => unknownFields(item, imports[m[1]], `${where}/${i}`, out));
  }
}

async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  const parts = apiVersion.split("/");
  const dir = parts.length === 1 ? parts[0] : `${parts[0]}/${parts[1]}`;
  const base = join(modules, "kubernetes-models", dir, kind);
  if (!existsSync(`${base}.mjs`)) return null;
  const mod = await import(`${base}.mjs`);
  return { Model: mod[kind], decl: `${base}.d.ts` };
}

async function main(files) {
  const problems = [];
  let count = 0;
  if (files.length === 0) {
    console.error("usage: node validate.mjs FILE... (- for standard input)");
    return 2;
  }
  for (const file of files) {
    const text = readFileSync(file === "-" ? 0 : file, "utf8");
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length) {
        for (const e of doc.errors) problems.push(`${file}: YAML: ${e.message}`);
        continue;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue;
      count++;
      const name = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
      const found = await modelFor(obj.apiVersion, obj.kind);
      if (!found) {
        problems.push(`${name}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
        continue;
      }
      try {
        new found.Model(obj).validate();
      } catch (err) {
        const details = err.errors ?? [{ instancePath: "", message: err.message }];
        for (const e of details) problems.push(`${name}: ${e.instancePath || "/"}: ${e.message}`);
      }
      const unknown = [];
      unknownFields(obj, found.decl, "", unknown);
      for (const u of unknown) problems.push(`${name}: ${u}`);
    }
  }
  for (const p of problems) console.log(p);
  if (problems.length) return 1;
  if (count === 0) {
    console.log("no objects found");
    return 1;
  }
  console.log(`ok: ${count} objects`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
