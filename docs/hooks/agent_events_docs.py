"""mkdocs hook: the generated parts of the agent-events site.

Everything that has a source of truth in the code is generated here at build
time, never committed as a copy that could drift (the spec's tables are
committed, for readers of the repository, and a test fails when they drift):

* ``on_files`` publishes every JSON Schema at the path of its ``$id``
  (``schemas/v1/<name>.json``), the AsyncAPI document (``asyncapi.json``)
  and, when the conformance kit ships one, the JSON Schema of its report;
* ``on_page_markdown`` fills ``<!-- agent-events:NAME [ARG] -->`` placeholders
  (Event and Rule references, CLI reference, exit codes, API entries, ...);
  a block committed after its placeholder, up to ``<!-- /agent-events:NAME -->``
  (the spec's tables, written by ``python docs/hooks/spec_tables.py`` so the
  spec reads whole in the repository), is replaced by a fresh one
  and turns a rule id cited as ``[`seq.contiguous`]`` into a link to its
  entry in the Rule reference.

An unknown placeholder, an unknown rule id or an API name that does not
import is logged as a warning, so ``mkdocs build --strict`` fails on it.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from dataclasses import MISSING
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import docgen_api
import docgen_capacity
import docgen_cli
import docgen_code
import docgen_events
import docgen_profiles
import docgen_rules
from docgen_markdown import code, table, text_block
from agent_events import schemas
from agent_events.conformance.core import rules as registry
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.agent_events")

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"<!--\s*agent-events:([a-z0-9-]+)(?:\s+([^\s>]+))?\s*-->")
#: A placeholder whose generated text is committed after it, up to its closing marker
#: (docs/spec.md's tables, see spec_tables.py): the build drops the copy and generates afresh.
COMMITTED_BLOCK = re.compile(r"(<!--\s*agent-events:([a-z0-9-]+)(?:\s+[^\s>]+)?\s*-->)\n.*?<!--\s*/agent-events:\2\s*-->",
                             re.S)
#: A rule cited the spec's way, ``[`id`]``, not already a link (``[`id`](...)`` or ``[`id`][ref]``).
#: (A ``[`id`]: url`` at the start of a line is a link definition; the replacement skips it.)
RULE_CITATION = re.compile(r"\[`([a-z_]+(?:\.[a-z_]+)+)`\](?![(\[])")
#: Where the conformance kit may keep the JSON Schema of its JSON report.
REPORT_SCHEMA_GLOB = "src/agent_events/conformance/*schema*.json"


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def site_path_of(uri: str, site_url: str) -> str | None:
    """The path inside the site at which an absolute ``$id`` under ``site_url`` is served.

    ``mkdocs serve`` replaces ``site_url`` with its own local address (keeping the
    path), so only the path is compared there: the files still land where each
    ``$id`` points once the site is deployed.
    """
    target, site = urlsplit(uri), urlsplit(site_url)
    if site.hostname not in ("127.0.0.1", "localhost", "::1") and (target.scheme, target.netloc) != (site.scheme, site.netloc):
        return None
    if not target.path.startswith(site.path or "/"):
        return None
    return target.path[len(site.path or "/"):] or None


def published_files(site_url: str) -> dict[str, str]:
    """Site path -> content of every machine-readable file the site publishes."""
    from agent_events.conformance.tooling import asyncapi

    published = {}
    for name, schema in schemas.all_schemas().items():
        path = site_path_of(schema["$id"], site_url)
        if path is None:
            log.warning("schema %s: $id %s is not under site_url %s, so it would not resolve", name, schema["$id"], site_url)
            continue
        published[path] = _json(schema)
    published["asyncapi.json"] = _json(asyncapi.build())
    for path in report_schemas():
        document = json.loads(path.read_text(encoding="utf-8"))
        target = site_path_of(document.get("$id", ""), site_url) or f"schemas/report/{path.name}"
        published[target] = _json(document)
    return published


def report_schemas() -> list[Path]:
    return sorted(ROOT.glob(REPORT_SCHEMA_GLOB))


def on_files(files: Files, config) -> Files:
    for path, content in published_files(config.site_url or "").items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            log.warning("docs/%s would shadow the generated %s; delete it (it is generated)", path, path)
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files


# -- placeholders ------------------------------------------------------------------------------

def _spec_sections(files: Files) -> dict[str, str]:
    spec = files.get_file_from_path("spec.md")
    return docgen_rules.spec_sections(spec.content_string) if spec is not None else {}


def _readme_setup(_arg, _ctx) -> str:
    """The README's set-up commands (its first bash block), so the docs show exactly what it does."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```bash\n(.*?)```", readme, re.S)
    if match is None:
        raise ValueError("README.md has no ```bash block")
    return f"```bash\n{match[1]}```\n"


def _cli_command(arg, _ctx) -> str:
    from agent_events.conformance.cli import build_parser

    commands = docgen_cli.subcommands(build_parser())
    if arg not in commands:
        raise ValueError(f"no subcommand {arg!r} (have: {', '.join(commands)})")
    sub, _ = commands[arg]
    return text_block(docgen_cli.usage(sub)) + "\n" + docgen_cli.arguments(sub, "####")


def _cli_group(arg, _ctx) -> str:
    """One argument group of one subcommand (``COMMAND:group title``): its description and options."""
    from agent_events.conformance.cli import build_parser

    command, _, title = (arg or "").partition(":")
    commands = docgen_cli.subcommands(build_parser())
    if command not in commands:
        raise ValueError(f"no subcommand {command!r} (have: {', '.join(commands)})")
    sub, _ = commands[command]
    for group in sub._action_groups:
        if group.title == title:
            rows = list(docgen_cli.argument_rows(sub, group._group_actions))
            intro = (group.description + "\n\n") if group.description else ""
            return intro + table(["argument", "value", "default", "description"], rows)
    raise ValueError(f"agent-events {command} has no argument group {title!r}")


def _published_schemas(_arg, ctx) -> str:
    site_url = ctx["config"].site_url or ""
    rows = []
    for name, schema in schemas.all_schemas().items():
        path = site_path_of(schema["$id"], site_url)
        rows.append((f"[{code(schema['$id'])}]({ctx['relative'](path)})", schema.get("title", name)))
    return table(["$id (published at this URL)", "title"], rows)


def _report_schema(_arg, ctx) -> str:
    """Where the JSON report's schema is published, and its fields (collapsed)."""
    found = report_schemas()
    if not found:
        return "*The JSON Schema of the JSON report is not published yet.*\n"
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    site_url = ctx["config"].site_url or ""
    out = []
    for path in found:
        document = json.loads(path.read_text(encoding="utf-8"))
        uri = document.get("$id") or f"{site_url}schemas/report/{path.name}"
        target = site_path_of(uri, site_url) or f"schemas/report/{path.name}"
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        resolver = Registry().with_resource(uri, resource).crawl().resolver(base_uri=uri)
        fields = docgen_events.field_table(document, resolver)
        out.append(f"The JSON Schema of the report, **{document.get('title', path.stem)}**, is published at "
                   f"[{code(uri)}]({ctx['relative'](target)}).\n")
        out.append('??? info "Every field of the report"\n\n' + "".join(f"    {line}\n" for line in fields.splitlines()))
    return "\n".join(out)


def _budgets(_arg, ctx) -> str:
    from agent_events.conformance.cli import build_parser

    return docgen_profiles.budgets_table(build_parser(), ctx["relative"]("rules.md"))


def _checker_diagram() -> str:
    """The per-run state machine, drawn from the transition table both sides use (agent_events.run_rules)."""
    from agent_events.run_rules import state_diagram

    return f"```mermaid\n{state_diagram()}```\n"


def _asyncapi_operations(_arg, ctx) -> str:
    """The document's operations, each with the messages it carries and replies with."""
    from agent_events.conformance.tooling import asyncapi

    document = asyncapi.build()

    def names(refs) -> str:
        return ", ".join(f"[{code(r['$ref'].rsplit('/', 1)[1])}]({ctx['relative']('events.md')}#{r['$ref'].rsplit('/', 1)[1]})"
                         for r in refs)

    rows = [(code(op_id), op["action"], names(op["messages"]), names(op.get("reply", {}).get("messages", [])),
             op.get("summary", ""))
            for op_id, op in document["operations"].items()]
    return table(["operation", "action", "messages", "reply", "summary"], rows)


def _scenarios(_arg, ctx) -> str:
    """The live check's scenarios, from their registry: what each does and the rules it exists for.

    Rules that most scenarios exercise (every run is checked for schemas, order,
    pairing...) are listed once below the table instead of in every row.
    """
    from agent_events.conformance.live.scenarios import SCENARIOS

    rules_page = ctx["relative"]("rules.md")
    counts: dict[str, int] = {}
    for scenario in SCENARIOS.values():
        for rule_id in dict.fromkeys(scenario.focus):
            counts[rule_id] = counts.get(rule_id, 0) + 1
    common = [r for r in registry.BY_ID if counts.get(r, 0) > len(SCENARIOS) / 2]

    def link(rule_id: str) -> str:
        return f"[{code(rule_id)}]({rules_page}#{rule_id})"

    rows = []
    for name, scenario in SCENARIOS.items():
        focus = list(dict.fromkeys(scenario.focus))
        runs_rules = bool(common) and sum(r in focus for r in common) >= 0.8 * len(common)
        specific = [link(r) for r in focus if r not in common or not runs_rules]
        if runs_rules:
            specific.append("the run rules")
        rows.append((code(name), scenario.title, ", ".join(specific)))
    out = table(["scenario", "what it does", "rules it exists for"], rows)
    if common:
        out += "\n**The run rules**, exercised by every scenario that completes runs: " + ", ".join(map(link, common)) + ".\n"
    return out


def _example_report(arg, _ctx) -> str:
    """The text report of a shipped invalid sequence vector, as a terminal shows it by default
    (the section lines, what failed in full, the verdict).

    Rendered by the real reporter at build time, so the example always shows
    today's format and today's wording.
    """
    from agent_events import conformance
    from agent_events.conformance.reporters import render

    vectors = dict(schemas.sequence_vectors())
    if arg not in vectors:
        raise ValueError(f"no sequence vector {arg!r}")
    vector = vectors[arg]
    report = conformance.validate_frames(vector["frames"], profile=vector.get("profile", "actions-agent"),
                                         name=f"sequences/{arg}")
    return text_block(render(report, "text"))


def _config_keys(_arg, _ctx) -> str:
    """The keys a config file may hold, from the config module's own declaration."""
    from agent_events.conformance import config
    from agent_events.conformance.cli import build_parser

    build_parser()  # commands register their own keys when imported
    rows = []
    for name, spec in config.KEYS.items():
        try:
            spec.convert(_NOT_A_VALUE)
            accepts = ""
        except ValueError as exc:  # each converter says what it expects
            accepts = str(exc)
        except Exception:  # noqa: BLE001 - a converter that cannot describe itself
            accepts = ""
        rows.append((code(name), spec.description, accepts))
    return table(["key", "what", "value"], rows)


_NOT_A_VALUE = object()


def _dialect_file_keys(_arg, _ctx) -> str:
    """Every key of a dialect file, by table, from the loader's own declaration (``toml_file.SCHEMA``)."""
    from agent_events.dialects import toml_file

    out = []
    for table_name, keys in toml_file.SCHEMA.items():
        title = "top level" if not table_name else (f"[[{table_name}]]" if table_name == "families" else f"[{table_name}]")
        rows = []
        for key, (convert, help_) in keys.items():
            try:
                convert(_NOT_A_VALUE)
                accepts = ""
            except ValueError as exc:
                accepts = str(exc)
            except Exception:  # noqa: BLE001
                accepts = ""
            rows.append((code(key), help_, accepts))
        out.append(f"**{title}**\n\n" + table(["key", "what", "value"], rows))
    return "\n".join(out)


def _ag_ui_scope(_arg, _ctx) -> str:
    """AG-UI's conformance streams: which areas are judged, which are not and why, with counts."""
    import tomllib

    scope = tomllib.loads((Path(__file__).resolve().parents[2] / "src" / "agent_events" / "dialects"
                           / "ag_ui_scope.toml").read_text(encoding="utf-8"))
    streams = Path(__file__).resolve().parents[2] / "schemas" / "dialects" / "ag-ui-1.1" / "streams"
    fixtures = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(streams.glob("*.json"))]
    counts: dict[str, int] = {}
    for f in fixtures:
        counts[f["area"]] = counts.get(f["area"], 0) + 1
    judged = sum(counts.get(a, 0) for a in scope["areas"]["in_scope"])
    rows = [(code(a), counts.get(a, 0), "judged with AG-UI's expected outcome") for a in scope["areas"]["in_scope"]]
    rows += [(code(a), counts.get(a, 0), f"not judged: {why}") for a, why in scope["areas"]["out_of_scope"].items()]
    mapping = table(["AG-UI's expected error contains", "the finding's rule"],
                    ((code(k), f"[`{v}`]({_ctx['relative']('rules.md')}#{v})") for k, v in scope["expected_rules"].items()))
    return (f"{len(fixtures)} streams: {judged} judged, {len(fixtures) - judged} out of scope.\n\n"
            + table(["area", "streams", "what the kit does"], rows) + "\n\n" + mapping)


def _settings(arg, _ctx) -> str:
    """The documented fields of a settings dataclass (``arg`` = dotted name), with defaults."""
    cls = docgen_api.resolve(arg)
    rows = [(code(name), "required" if default is MISSING else code(repr(default)), meaning)
            for name, default, meaning in docgen_code.dataclass_fields(cls)]
    return table(["setting", "default", "meaning"], rows)


GENERATORS: dict[str, Callable[[str | None, dict], str]] = {
    "events": lambda _a, ctx: docgen_events.event_reference(ctx["warn"]),
    "event-index": lambda _a, _ctx: docgen_events.event_index(),
    "event-payloads": lambda _a, _ctx: docgen_events.event_payloads(),
    "error-codes": lambda _a, _ctx: docgen_events.error_codes(),
    "envelope": lambda _a, _ctx: docgen_events.envelope_table(),
    "rules": lambda _a, ctx: docgen_rules.rule_list(ctx["sections"], ctx["relative"]("rules.md")),
    "rule-reference": lambda _a, ctx: docgen_rules.rule_reference(ctx["sections"], ctx["relative"]("spec.md")),
    "cli": lambda _a, _ctx: docgen_cli.cli_reference(),
    "config-keys": _config_keys,
    "scenarios": _scenarios,
    "example-report": _example_report,
    "asyncapi-operations": _asyncapi_operations,
    "cli-command": _cli_command,
    "cli-group": _cli_group,
    "exit-codes": lambda _a, _ctx: docgen_cli.exit_code_table(),
    "api": lambda arg, _ctx: docgen_api.entry(arg),
    "budgets": _budgets,
    "checker-diagram": lambda _a, _ctx: _checker_diagram(),
    "profiles": lambda _a, ctx: docgen_profiles.profiles_section(ctx["relative"]("rules.md")),
    "settings": _settings,
    "readme-setup": _readme_setup,
    "schemas": _published_schemas,
    "report-schema": _report_schema,
    "dialect-file-keys": _dialect_file_keys,
    "ag-ui-scope": _ag_ui_scope,
    **docgen_capacity.GENERATORS,
}


def fill_placeholders(markdown: str, ctx: dict) -> str:
    def replace(match: re.Match) -> str:
        name, arg = match[1], match[2]
        generator = GENERATORS.get(name)
        if generator is None:
            ctx["warn"](f"unknown placeholder agent-events:{name} (known: {', '.join(GENERATORS)})")
            return match[0]
        try:
            return generator(arg, ctx)
        except (ImportError, ValueError, KeyError, AttributeError) as exc:
            ctx["warn"](f"agent-events:{name} {arg or ''}: {exc}")
            return match[0]

    return PLACEHOLDER.sub(replace, COMMITTED_BLOCK.sub(r"\1", markdown))


def link_rule_citations(markdown: str, ctx: dict) -> str:
    """``[`seq.contiguous`]`` -> a link to that rule's entry; a cited id that is not a rule is a warning."""
    prefixes = {rule_id.split(".")[0] for rule_id in registry.BY_ID}

    def replace(match: re.Match) -> str:
        rule_id = match[1]
        at_line_start = match.start() == 0 or markdown[match.start() - 1] == "\n"
        if at_line_start and markdown.startswith(":", match.end()):
            return match[0]  # a reference-link definition, not a citation
        if rule_id in registry.BY_ID:
            return f"[`{rule_id}`]({ctx['relative']('rules.md')}#{rule_id})"
        if rule_id.split(".")[0] in prefixes:
            ctx["warn"](f"cites unknown rule id {rule_id!r}")
        return match[0]

    return RULE_CITATION.sub(replace, markdown)


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    src = page.file.src_uri
    here = posixpath.dirname(src)

    def relative(target: str) -> str:
        link = posixpath.relpath(target, here or ".")
        return "" if target == src else link

    ctx = {
        "config": config,
        "page": page,
        "relative": relative,
        "sections": _spec_sections(files),
        "warn": lambda message: log.warning("%s: %s", src, message),
    }
    markdown = fill_placeholders(markdown, ctx)
    return link_rule_citations(markdown, ctx)
