#!/usr/bin/env node
// Generate packages/agent-events-types/index.d.ts from schemas/v1 with json-schema-to-typescript.
//
//   node scripts/gen_ts_types.mjs                 # write the package's index.d.ts
//   node scripts/gen_ts_types.mjs --check         # exit 1 when the committed file differs (drift)
//   node scripts/gen_ts_types.mjs --schemas DIR --out FILE
//
// The tools come from the package's own devDependencies (cd packages/agent-events-types && npm ci).
//
// json-schema-to-typescript writes the types; this script only bundles the schemas into one
// document it can read offline and names what it would otherwise number:
// * every $ref becomes local ("defs.json#/$defs/run_id" -> "#/$defs/defs.run_id"): nothing is
//   resolved over the network or against the schemas' https $ids;
// * an event's "$ref": "envelope.json" is merged in (its properties and required), since the
//   envelope and the event's own properties are one object on the wire;
// * each definition gets a title (AgentStartedPayload, RunId, ...), so the types have names;
// * a schema's "x-since" becomes "@since X" in its doc comment (a message without one: 1.0);
// * ServerMessage and ClientMessage are the unions server_message.json and client_message.json
//   dispatch on "type" (their if/then branches), so a switch on msg.type narrows.

import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PACKAGE = path.join(ROOT, "packages", "agent-events-types");

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const check = process.argv.includes("--check");
const schemasDir = path.resolve(option("--schemas", path.join(ROOT, "schemas", "v1")));
const out = path.resolve(option("--out", path.join(PACKAGE, "index.d.ts")));

const require = createRequire(path.join(PACKAGE, "package.json"));
const { compile } = require("json-schema-to-typescript");

const pascal = (s) => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join("");
const stem = (file) => file.replace(/\.json$/, "");

const files = readdirSync(schemasDir).filter((f) => f.endsWith(".json")).sort();
const docs = Object.fromEntries(files.map((f) => [stem(f), JSON.parse(readFileSync(path.join(schemasDir, f), "utf8"))]));
const UNIONS = { server_message: "ServerMessage", client_message: "ClientMessage" };
const MERGED = new Set(["envelope"]);
const GLOBALS = new Set(["Error", "Object", "String", "Number", "Function", "Symbol", "Date", "Event", "Message"]);

function since(node, fallback) {
  const version = node["x-since"] ?? fallback;
  if (version) node.description = `${node.description ?? ""}${node.description ? "\n\n" : ""}@since ${version}`;
  delete node["x-since"];
}

// Rewrite a $ref of document `doc` to a key of the bundle's $defs.
function localRef(doc, ref) {
  const [file, pointer = ""] = ref.split("#");
  const target = file ? stem(file) : doc;
  const m = pointer.match(/^\/\$defs\/([^/]+)$/);
  if (m) return `#/$defs/${target}.${m[1]}`;
  if (pointer === "" || pointer === "/") return `#/$defs/${target}`;
  throw new Error(`${doc}: cannot bundle $ref ${ref}`);
}

function rewrite(doc, node) {
  if (Array.isArray(node)) return node.map((n) => rewrite(doc, n));
  if (node === null || typeof node !== "object") return node;
  const copy = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "$ref") copy.$ref = localRef(doc, v); // made a tsType (the target's name) once titles are known
    else if (k === "x-since") copy[k] = v;
    else copy[k] = rewrite(doc, v);
  }
  if ("x-since" in copy) since(copy);
  return copy;
}

const defs = {};
for (const [name, schema] of Object.entries(docs)) {
  if (UNIONS[name] || MERGED.has(name)) continue;
  let body = rewrite(name, schema);
  const nested = body.$defs ?? {};
  delete body.$defs;
  delete body.$id;
  delete body.$schema;
  if (body.$ref === "#/$defs/envelope") { // merge the envelope: one object on the wire
    const env = rewrite("envelope", docs.envelope);
    delete body.$ref;
    body = {
      ...env, ...body,
      description: body.description,
      properties: { ...env.properties, ...body.properties },
      required: [...new Set([...(env.required ?? []), ...(body.required ?? [])])],
    };
    delete body.$id;
    delete body.$schema;
  }
  if (name !== "defs") {
    body.title = pascal(schema.title && /^[a-z_]+$/.test(schema.title) ? schema.title : name);
    if (GLOBALS.has(body.title)) body.title += "Message"; // "Error" would shadow the global Error
    since(body, body.description?.includes("@since") ? undefined : "1.0");
    defs[name] = body;
  }
  for (const [key, sub] of Object.entries(nested)) {
    defs[`${name}.${key}`] = { ...sub, title: name === "defs" ? pascal(key) : pascal(name) + pascal(key) };
  }
}

// Every $ref becomes the name of its target's type (tsType): each definition is then declared once,
// from $defs, instead of once more per $ref that adds a description beside it (EpochMs1, EpochMs2, ...).
function named(node) {
  if (Array.isArray(node)) return node.map(named);
  if (node === null || typeof node !== "object") return node;
  const copy = {};
  for (const [k, v] of Object.entries(node)) copy[k] = k === "$ref" ? v : named(v);
  if (copy.$ref) {
    const key = copy.$ref.slice("#/$defs/".length);
    if (!defs[key]) throw new Error(`unresolved $ref ${copy.$ref}`);
    copy.tsType = defs[key].title;
    delete copy.$ref;
  }
  return copy;
}
for (const key of Object.keys(defs)) defs[key] = named(defs[key]);

// The unions: each if/then branch of server_message / client_message, by its "type" constant.
const unions = {};
for (const [name, typeName] of Object.entries(UNIONS)) {
  unions[typeName] = docs[name].allOf.map((branch) => {
    const constant = branch.if.properties.type.const;
    const target = stem(branch.then.$ref);
    return { constant, title: defs[target].title };
  });
}

// The root only carries the definitions: json-schema-to-typescript declares every $defs entry of an
// object root (unreachableDefinitions); its own interface is dropped below.
const bundle = { title: "Bundle", type: "object", properties: {}, additionalProperties: false, $defs: defs };

const banner = `/* eslint-disable */
/**
 * The agent-events protocol v1 messages as TypeScript types.
 *
 * GENERATED from schemas/v1/*.json by scripts/gen_ts_types.mjs (json-schema-to-typescript).
 * Do not edit: change the schemas and run \`npm run generate\` in packages/agent-events-types.
 */`;

let ts = await compile(bundle, "Bundle", {
  bannerComment: banner,
  additionalProperties: true,
  declareExternallyReferenced: true,
  unreachableDefinitions: true,
  $refOptions: { resolve: { http: false, file: false } },
  style: { singleQuote: false, printWidth: 100 },
});

// json-schema-to-typescript notes where each definition came from (the bundle's keys, which mean
// nothing to a reader of the package) and declares the bundle's root: both go.
const NOTE = "This interface was referenced by `Bundle`'s JSON-Schema\n \\* via the `definition` \"[^\"]+\".";
ts = ts.replace(new RegExp(`/\\*\\*\\n \\* ${NOTE}\\n \\*/\\n`, "g"), "")
  .replace(new RegExp(`\\n \\*\\n \\* ${NOTE}`, "g"), "")
  .replace("export interface Bundle {}\n", "");
if (ts.includes("referenced by `Bundle`") || ts.includes("interface Bundle")) throw new Error("bundle notes left in the output");

const allTitles = [...new Set(Object.values(unions).flat().map((u) => u.title))];
ts += `\n/** Any message of either side: a ServerMessage or a ClientMessage (each side has its own time_sync). */\n`;
ts += `export type AnyMessage = ${allTitles.join(" | ")};\n`;
for (const [typeName, members] of Object.entries(UNIONS).map(([n, t]) => [t, unions[t]])) {
  const source = Object.keys(UNIONS).find((k) => UNIONS[k] === typeName);
  ts += `\n/**\n * ${docs[source].description}\n *\n * Discriminated on \`type\`: ${members.map((m) => `"${m.constant}" -> ${m.title}`).join(", ")}.\n */\n`;
  ts += `export type ${typeName} = ${members.map((m) => m.title).join(" | ")};\n`;
  ts += `/** The \`type\` of every ${typeName}. */\nexport type ${typeName}Type = ${typeName}["type"];\n`;
}
ts += `\n/** The run events: the messages with a run_id and a seq (the envelope). */\n`;
ts += `export type RunEvent = Extract<ServerMessage, { seq: number }>;\n`;

if (check) {
  let committed = "";
  try { committed = readFileSync(out, "utf8"); } catch { /* missing counts as drift */ }
  if (committed !== ts) {
    console.error(`${path.relative(ROOT, out)} differs from what the schemas generate: run npm run generate in packages/agent-events-types`);
    process.exit(1);
  }
  console.log(`${path.relative(ROOT, out)} is up to date`);
} else {
  writeFileSync(out, ts);
  console.log(`wrote ${out}`);
}
