// Parse an AsyncAPI document with @asyncapi/parser (the reference implementation of the
// AsyncAPI spec, independent of our Python code) and print its diagnostics as JSON.
// Usage: node asyncapi_parse.cjs DOCUMENT.json   (NODE_PATH points at the parser's node_modules)
const fs = require("fs");
const { Parser } = require("@asyncapi/parser");

const SEVERITY = ["error", "warning", "info", "hint"];

async function main() {
  const text = fs.readFileSync(process.argv[2], "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  const out = {
    parsed: document !== undefined,
    diagnostics: diagnostics.map((d) => ({
      severity: SEVERITY[d.severity] ?? String(d.severity),
      code: String(d.code),
      message: d.message,
      path: d.path,
    })),
  };
  if (document) {
    out.channels = document.channels().all().map((c) => c.id());
    out.messages = document.messages().all().map((m) => m.id());
    out.operations = document.operations().all().map((o) => [o.id(), o.action()]);
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err));
  process.exit(2);
});
