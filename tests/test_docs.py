"""The docs site: it builds strictly, its generated references are complete, its examples run.

The site is built once per module with the real ``mkdocs build --strict`` (a
broken link, a bad anchor, an unknown placeholder or rule id fails it), and
the assertions read the built HTML, i.e. what a reader gets.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agent_events import schemas
from agent_events.conformance.tooling import asyncapi
from agent_events.conformance.cli import available_commands, build_parser
from agent_events.conformance.core.rules import RULES

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "docs" / "hooks"
SITE_URL = "https://agent-events.dev/"


def build_site(site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "--site-dir", str(site), "-f", str(ROOT / "mkdocs.yml")],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=env,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    proc = build_site(site)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-6000:]}"
    return site


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def sections(page_html: str, tag: str = "h3") -> dict[str, str]:
    """Anchor id -> the HTML from that heading to the next heading of the same level."""
    parts = re.split(rf'(<{tag} id="[^"]+")', page_html)
    return {re.search(r'id="([^"]+)"', parts[i])[1]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def code_blocks(fragment: str) -> list[str]:
    return [text_of(block) for block in re.findall(r"<pre[^>]*>(.*?)</pre>", fragment, re.S)]


# -- the build ------------------------------------------------------------------------------

@pytest.mark.slow
def test_every_nav_page_is_built(site):
    from mkdocs.config import load_config

    pages = [next(iter(entry.values())) for entry in load_config(str(ROOT / "mkdocs.yml"))["nav"]]
    assert "spec.md" in pages
    for source in pages:
        built = site / ("index.html" if source == "index.md" else source[:-3] + "/index.html")
        assert built.is_file(), f"{source} was not built"
        assert "agent-events:" not in built.read_text(encoding="utf-8"), f"{source}: an unfilled placeholder"


@pytest.mark.slow
def test_material_features_are_on(site):
    home = page(site, ".")
    assert 'data-md-color-scheme="slate"' in home or "__palette_1" in home  # the dark mode toggle
    assert (site / "search" / "search_index.json").is_file()
    assert re.search(r'class="mermaid"', page(site, "spec")), "mermaid fences must reach the theme as such"
    assert "content.code.copy" in home


# -- generated references -------------------------------------------------------------------

@pytest.mark.slow
def test_event_reference_documents_every_message_with_its_fields(site):
    found = sections(page(site, "events"))
    expected = {**{n: t for t, n in schemas.SERVER_TYPES.items()}, **{n: t for t, n in schemas.CLIENT_TYPES.items()}}
    assert set(expected) <= set(found)
    for name, type_ in expected.items():
        body = text_of(found[name])
        assert type_ in body
        schema = schemas.load(name)
        payload = schema.get("$defs", {}).get("payload", {}).get("properties")
        fields = [f"payload.{p}" for p in payload] if payload else list(schema["properties"])
        for field in fields:
            assert field in body, f"{name}: field {field} is not documented"


@pytest.mark.slow
def test_every_run_event_type_appears_on_the_event_reference(site):
    body = text_of(page(site, "events"))
    for type_ in schemas.RUN_EVENT_TYPES:
        assert type_ in body


@pytest.mark.slow
def test_event_reference_examples_are_valid_messages_of_their_section(site):
    found = sections(page(site, "events"))
    names = set(schemas.SERVER_TYPES.values()) | set(schemas.CLIENT_TYPES.values())
    for name in names:
        examples = [json.loads(block) for block in code_blocks(found[name])]
        assert examples, f"{name}: no example"
        for example in examples:
            assert schemas.validator(name).is_valid(example), f"{name}: invalid example {example}"


@pytest.mark.slow
def test_rule_reference_has_an_anchored_entry_for_every_rule(site):
    found = sections(page(site, "rules"))
    for rule in RULES:
        assert rule.id in found, f"no #{rule.id} on the rule reference"
        body = found[rule.id]
        assert rule.level.value in text_of(body)
        assert rule.rationale.split()[0] in text_of(body)
        assert f'href="../spec/#{rule.section}"' in body


@pytest.mark.slow
def test_spec_cites_and_lists_every_rule_with_a_link(site):
    spec = page(site, "spec")
    for rule in RULES:
        assert f'href="../rules/#{rule.id}"' in spec


@pytest.mark.slow
def test_cli_reference_documents_every_subcommand_and_option(site):
    body = page(site, "cli")
    commands = available_commands()
    assert commands
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in commands:
        assert f'id="agent-events-{name}"' in body
        for action in subparsers[name]._actions:
            for option in action.option_strings:
                assert option in text_of(body), f"agent-events {name} {option} is not documented"
    for code_ in range(5):
        assert f"<code>{code_}</code>" in body
    from agent_events.conformance.tooling.pytest_plugin import option_names

    for option in option_names():
        assert f"<code>{option}</code>" in body, f"pytest plugin option {option} is not documented"


def test_cli_reference_picks_up_a_subcommand_added_later(tmp_path, monkeypatch):
    """Nothing is listed by hand: a new command module appears on the page by itself."""
    (tmp_path / "ae_docs_test_frobnicate.py").write_text(textwrap.dedent('''
        HELP = "frobnicate the event stream"
        def add_arguments(parser):
            parser.add_argument("--wobble-ms", type=float, default=7.5, help="how much to wobble")
        def run(args):
            return 0
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(HOOKS))
    from agent_events.conformance import cli

    monkeypatch.setitem(cli.COMMANDS, "frobnicate", "ae_docs_test_frobnicate")
    import docgen_cli

    text = docgen_cli.cli_reference()
    assert "## `agent-events frobnicate` {#agent-events-frobnicate}" in text
    assert "`--wobble-ms`" in text and "how much to wobble" in text and "`7.5`" in text


# -- published machine-readable files ---------------------------------------------------------

@pytest.mark.slow
def test_every_schema_is_published_at_its_id(site):
    for name, schema in schemas.all_schemas().items():
        assert schema["$id"].startswith(SITE_URL)
        published = site / urlsplit(schema["$id"]).path.lstrip("/")
        assert json.loads(published.read_text(encoding="utf-8")) == schema, name


@pytest.mark.slow
def test_report_schema_is_published_at_its_id(site):
    found = sorted((ROOT / "src" / "agent_events" / "conformance").glob("*schema*.json"))
    assert found, "the conformance kit ships no JSON Schema of its report"
    for path in found:
        document = json.loads(path.read_text(encoding="utf-8"))
        published = site / urlsplit(document["$id"]).path.lstrip("/")
        assert json.loads(published.read_text(encoding="utf-8")) == document
    assert "Every field of the report" in page(site, "conformance")


@pytest.mark.slow
def test_asyncapi_document_is_published(site):
    assert json.loads((site / "asyncapi.json").read_text(encoding="utf-8")) == asyncapi.build()
    assert 'href="../asyncapi.json"' in page(site, "asyncapi")


@pytest.mark.slow
def test_quickstart_shows_the_readme_commands(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.search(r"```bash\n(.*?)```", readme, re.S)[1]
    quickstart = text_of(page(site, "quickstart"))
    for line in commands.strip().splitlines():
        assert line.split("#")[0].strip() in quickstart


# -- the hook's safety nets (no build needed) ------------------------------------------------

@pytest.fixture
def hook(monkeypatch):
    monkeypatch.syspath_prepend(str(HOOKS))
    import agent_events_docs

    return agent_events_docs


def _ctx(warnings: list[str]) -> dict:
    return {"relative": lambda target: target, "sections": {}, "warn": warnings.append, "config": None, "page": None}


def test_rule_citations_become_links_and_unknown_ids_warn(hook):
    warnings: list[str] = []
    out = hook.link_rule_citations("See [`seq.contiguous`] and [`seq.contigous`] and [`x`](y).", _ctx(warnings))
    assert "[`seq.contiguous`](rules.md#seq.contiguous)" in out
    assert "[`seq.contigous`]" in out and "[`x`](y)" in out
    assert warnings == ["cites unknown rule id 'seq.contigous'"]


def test_unknown_placeholder_warns_and_stays_visible(hook):
    warnings: list[str] = []
    out = hook.fill_placeholders("a <!-- agent-events:no-such-thing --> b", _ctx(warnings))
    assert "agent-events:no-such-thing" in out
    assert len(warnings) == 1 and "unknown placeholder" in warnings[0]


def test_api_placeholder_of_a_missing_name_warns(hook):
    warnings: list[str] = []
    hook.fill_placeholders("<!-- agent-events:api agent_events.conformance.no_such_function -->", _ctx(warnings))
    assert len(warnings) == 1 and "no_such_function" in warnings[0]


# -- runnable examples -------------------------------------------------------------------------

RUNNER = '''
import sys
blocks = {blocks!r}
namespace = {{"__name__": "__main__"}}
for number, source in enumerate(blocks, 1):
    exec(compile(source, f"{page}: python example {{number}}", "exec"), namespace)
'''


def python_examples(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, re.M | re.S)


def run_examples(page_name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run every python fence of a page, in order, in one namespace, in a fresh interpreter."""
    markdown = (ROOT / "docs" / page_name).read_text(encoding="utf-8")
    blocks = python_examples(markdown)
    assert blocks, f"{page_name} has no python example"
    script = tmp_path / "examples.py"
    script.write_text(RUNNER.format(blocks=blocks, page=page_name), encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_every_example_of_writing_a_conforming_agent_runs(tmp_path):
    proc = run_examples("writing-an-agent.md", tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # What the page says the first run prints is what it prints.
    markdown = (ROOT / "docs" / "writing-an-agent.md").read_text(encoding="utf-8")
    shown = re.search(r"^prints\n\n```text\n(.*?)^```", markdown, re.M | re.S)[1]
    assert shown in proc.stdout


def test_every_example_of_the_python_api_page_runs(tmp_path):
    proc = run_examples("python-api.md", tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_wire_examples_are_valid_protocol_messages():
    """The raw exchange shown on the Reference agent page is made of valid messages."""
    markdown = (ROOT / "docs" / "reference-agent.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```json\n(.*?)^```", markdown, re.M | re.S)
    messages = [json.loads(line) for block in blocks for line in block.splitlines() if line.strip()]
    assert any(m["type"] == "start_run" for m in messages) and any(m["type"] == "agent_completed" for m in messages)
    for message in messages:
        valid = [side for side in (schemas.CLIENT_MESSAGE, schemas.SERVER_MESSAGE) if schemas.validator(side).is_valid(message)]
        assert valid, message


def test_schemas_land_at_their_id_path_also_under_mkdocs_serve(hook):
    uri = "https://agent-events.dev/schemas/v1/seq.json"
    assert hook.site_path_of(uri, "https://agent-events.dev/") == "schemas/v1/seq.json"
    assert hook.site_path_of(uri, "http://127.0.0.1:8000/") == "schemas/v1/seq.json"  # mkdocs serve
    assert hook.site_path_of(uri, "https://example.org/") is None  # would not resolve: warned
    assert hook.site_path_of(uri, "https://agent-events.dev/docs/") is None


# -- command lines and config shown in the docs are accepted by the real parsers ---------------

def shown_command_lines() -> list[tuple[str, list[str]]]:
    """(page, argv) of every ``agent-events ...`` command in a shell or YAML block of the docs."""
    import shlex

    found = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        markdown = path.read_text(encoding="utf-8")
        for block in re.findall(r"^```(?:bash|yaml|sh)\n(.*?)^```", markdown, re.M | re.S):
            text = re.sub(r"\\\n\s*", " ", block)  # join continued lines
            for line in text.splitlines():
                line = re.split(r"\s#\s", line + " ")[0]  # drop a trailing comment
                for segment in re.split(r"\||&&|;", line):  # each command of a pipeline or list
                    segment = re.split(r"\s(?:2?>)\s|\s&\s*$", segment + " ")[0]  # drop redirections, &
                    match = re.match(r"\s*(?:- run:\s*)?agent-events\s+(.*)$", segment)
                    if match:
                        argv = shlex.split(match[1].replace("$", ""))
                        if argv and not argv[0].startswith("-"):
                            found.append((path.name, argv))
    return found


def test_docs_show_command_lines():
    assert {argv[0] for _, argv in shown_command_lines()} >= {"demo", "serve", "schema"}


@pytest.mark.parametrize("page_name,argv", shown_command_lines(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_command_line_in_the_docs_parses(page_name, argv):
    parser = build_parser()
    commands = available_commands()
    if argv[0] not in commands:
        pytest.xfail(f"{page_name}: agent-events {argv[0]} is not implemented yet")
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{page_name}: `agent-events {' '.join(argv)}` is rejected by the CLI (exit {exc.code})")


def test_config_examples_in_the_docs_are_accepted(tmp_path):
    from agent_events.conformance import config

    blocks = re.findall(r"^```toml\n(.*?)^```", (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8"), re.M | re.S)
    assert blocks
    for block in blocks:
        (tmp_path / "pyproject.toml").write_text(block, encoding="utf-8")
        loaded = config.load(tmp_path / "pyproject.toml")
        assert loaded.values, block


@pytest.mark.parametrize("source,placeholder", [("events.md", "events"), ("rules.md", "rule-reference"), ("cli.md", "cli")])
def test_generated_references_are_not_committed_as_copies(source, placeholder):
    """The committed page is prose around a placeholder; the reference itself exists only in the build."""
    text = (ROOT / "docs" / source).read_text(encoding="utf-8")
    assert f"<!-- agent-events:{placeholder} -->" in text
    assert not re.search(r"^#{2,} ", text, re.M), f"{source} has hand-written sections; generate them"
    assert not (ROOT / "docs" / "schemas").exists(), "schemas are published by the build, not copied into docs/"


def test_the_conformance_guide_describes_exactly_the_report_formats_offered():
    from agent_events.conformance.reporters import REPORTERS

    guide = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    formats = guide[guide.index("Formats (`--format`"):guide.index("### The JSON report")]
    assert set(re.findall(r"^- \*\*(\w+)\*\*:", formats, re.M)) == set(REPORTERS)


@pytest.mark.slow
def test_conformance_guide_lists_every_scenario_profile_and_config_key(site):
    from agent_events.conformance import config
    from agent_events.conformance.core import profiles
    from agent_events.conformance.live.scenarios import SCENARIOS

    guide = page(site, "conformance")
    for name in [*SCENARIOS, *profiles.PROFILES, *config.KEYS, *profiles.BUDGETS]:
        assert f"<code>{name}</code>" in guide, name


def _all_options() -> set[str]:
    parser = build_parser()
    options = {o for a in parser._actions for o in a.option_strings}
    for action in parser._actions:
        if isinstance(action.choices, dict):  # the subcommands
            for sub in action.choices.values():
                options.update(o for a in sub._actions for o in a.option_strings)
    from agent_events.conformance.tooling.pytest_plugin import option_names

    options.update(option_names())
    return options


def _locust_options() -> set[str]:
    """Locust's options and the ``--agent-events-*`` ones agent_events.locust adds (the load page
    names them), read in a subprocess: importing locust here would monkey-patch this test process
    with gevent. (``locust --help`` prints before loading a locustfile, so it would miss ours.)"""
    script = ("from agent_events.locust import AgentEventsUser\n"
              "from locust.argument_parser import get_parser\n"
              "print('\\n'.join(o for a in get_parser()._actions for o in a.option_strings))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_every_option_the_guides_mention_exists():
    """Prose mentions flags too (`--strict`, `--record`): each one must be a real option."""
    known = _all_options() | _locust_options()
    missing = {}
    for path in sorted((ROOT / "docs").glob("*.md")):
        if path.name == "spec.md":
            continue
        for span in re.findall(r"`([^`\n]+)`", path.read_text(encoding="utf-8")):
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", span):
                if flag not in known:
                    missing.setdefault(flag, path.name)
    assert not missing, f"options mentioned in the docs that no command has: {missing}"


def test_the_ci_guide_pytest_example_passes_against_the_reference_agent(tmp_path):
    """The fixtures example of the CI guide, run as a team would: a test file in their own repository."""
    example = python_examples((ROOT / "docs" / "ci.md").read_text(encoding="utf-8"))[0]
    (tmp_path / "test_event_contract.py").write_text(example, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_event_contract.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout


def test_the_ci_guide_offline_example_validates_a_log(tmp_path):
    example = python_examples((ROOT / "docs" / "ci.md").read_text(encoding="utf-8"))[1]
    vector = dict(schemas.sequence_vectors())["valid/primary.json"]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "events.jsonl").write_text("".join(json.dumps(f) + "\n" for f in vector["frames"]))
    proc = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
def test_the_spec_page_shows_the_generated_envelope_payload_and_error_code_tables(site):
    text = text_of(page(site, "spec"))
    assert "<!-- agent-events:" not in page(site, "spec")
    for code, meaning in schemas.load("error")["properties"]["code"]["x-enumDescriptions"].items():
        assert code in text and text_of(meaning.replace("`", "")) in text.replace("`", "")
    for type_ in schemas.RUN_EVENT_TYPES:
        assert type_ in text
    for name in schemas.load("envelope")["required"] + schemas.load("result")["required"]:
        assert name in text


@pytest.mark.slow
def test_the_capacity_page_is_built_from_the_recorded_run_it_names(site):
    """The build regenerates the capacity figures from the recorded run (docgen_capacity): what a
    reader sees is that file's figures, whatever the committed copy says."""
    sys.path.insert(0, str(HOOKS))
    import docgen_capacity

    source = (ROOT / "docs" / "capacity.md").read_text(encoding="utf-8")
    recorded = re.search(r"<!-- agent-events:capacity-figures (\S+) -->", source)[1]
    figures = docgen_capacity.figures_of(docgen_capacity.load_run(recorded))
    shown = text_of(page(site, "capacity"))
    assert recorded in shown
    assert f"{figures['locust_us']:.2f} us" in shown and f"{figures['agent_us']:.2f} us" in shown
    assert "10,000,000 x" in shown  # the worked example, filled
