"""The TypeScript package (``packages/agent-events-types``): generated from the schemas, committed, strict-clean.

* the committed ``index.d.ts`` is exactly what ``scripts/gen_ts_types.mjs`` (json-schema-to-typescript)
  generates from ``schemas/v1`` now: a schema changed without regenerating fails here;
* a small typed client (``tests/typescript/client.ts``) compiles with ``tsc --strict``, and the
  seed's bug (``msg.tool_name`` instead of ``msg.payload.tool_name``) does not;
* ``npm pack`` builds the package with the types in it.

The tools are the package's pinned devDependencies (``package-lock.json``): the fixture installs them
with ``npm ci --offline`` (from npm's cache) and else ``npm ci`` (from the registry). Without node or
npm, or when neither install works, the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "packages" / "agent-events-types"
GENERATOR = ROOT / "scripts" / "gen_ts_types.mjs"
SCHEMAS = ROOT / "schemas" / "v1"
CLIENTS = Path(__file__).parent / "typescript"
TOOLS = ("json-schema-to-typescript", "typescript")


def _tools_installed() -> bool:
    return all((PACKAGE / "node_modules" / name / "package.json").is_file() for name in TOOLS)


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the TypeScript package (apt-get install nodejs npm)")
    if not _tools_installed():
        failures = []
        for command in (["npm", "ci", "--offline"], ["npm", "ci"]):
            done = subprocess.run([*command, "--no-audit", "--no-fund"], cwd=PACKAGE, capture_output=True, text=True,
                                  timeout=600)
            if done.returncode == 0 and _tools_installed():
                break
            failures.append(f"{' '.join(command)}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        else:
            pytest.skip(f"cannot install the package's devDependencies ({'; '.join(failures)})")
    return node


def generate(node: str, out: Path, schemas: Path = SCHEMAS, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([node, str(GENERATOR), "--schemas", str(schemas), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=120)


def test_the_committed_types_are_what_the_schemas_generate(node, tmp_path):
    done = generate(node, tmp_path / "index.d.ts")
    assert done.returncode == 0, done.stderr
    committed = (PACKAGE / "index.d.ts").read_text(encoding="utf-8")
    assert (tmp_path / "index.d.ts").read_text(encoding="utf-8") == committed, (
        "packages/agent-events-types/index.d.ts is stale: cd packages/agent-events-types && npm run generate")


def test_a_schema_changed_without_regenerating_fails_the_drift_check(node, tmp_path):
    schemas = tmp_path / "v1"
    shutil.copytree(SCHEMAS, schemas)
    doc = json.loads((schemas / "tool_executing.json").read_text())
    doc["$defs"]["payload"]["properties"]["attempt_no"] = {"type": "integer", "description": "a new field"}
    (schemas / "tool_executing.json").write_text(json.dumps(doc))
    drift = generate(node, PACKAGE / "index.d.ts", schemas, "--check")
    assert drift.returncode == 1 and "npm run generate" in drift.stderr
    assert generate(node, PACKAGE / "index.d.ts", SCHEMAS, "--check").returncode == 0
    regenerated = generate(node, tmp_path / "new.d.ts", schemas)
    assert regenerated.returncode == 0 and "attempt_no?: number;" in (tmp_path / "new.d.ts").read_text()


def _compile(node: str, tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    """``tsc --strict`` on ``source`` in a project that depends on the package (linked, as npm link does)."""
    project = tmp_path / "client"
    (project / "node_modules" / "@agent-events").mkdir(parents=True, exist_ok=True)
    link = project / "node_modules" / "@agent-events" / "types"
    if not link.exists():
        link.symlink_to(PACKAGE, target_is_directory=True)
    shutil.copy(CLIENTS / source, project / source)
    tsc = PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"
    return subprocess.run([node, str(tsc), "--strict", "--noEmit", "--target", "es2022", "--module", "nodenext",
                           "--moduleResolution", "nodenext", "--noUnusedLocals", source],
                          cwd=project, capture_output=True, text=True, timeout=300)


def test_a_typed_client_compiles_with_tsc_strict(node, tmp_path):
    done = _compile(node, tmp_path, "client.ts")
    assert done.returncode == 0, done.stdout + done.stderr


def test_reading_the_tool_name_from_the_wrong_place_does_not_compile(node, tmp_path):
    """The seed's front end read ``tool_name`` at the top level while its server sent it in the payload."""
    done = _compile(node, tmp_path, "misreads_tool_name.ts")
    assert done.returncode != 0
    assert "Property 'tool_name' does not exist on type 'ToolExecuting'" in done.stdout


def test_npm_pack_builds_the_package(node):
    done = subprocess.run(["npm", "pack", "--dry-run", "--json"], cwd=PACKAGE, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    (packed,) = json.loads(done.stdout)
    assert packed["name"] == "@agent-events/types"
    assert {f["path"] for f in packed["files"]} == {"index.d.ts", "package.json", "README.md"}


# -- the committed file itself (no node needed) --------------------------------------------

DTS = (PACKAGE / "index.d.ts").read_text(encoding="utf-8")


def _union(name: str) -> list[str]:
    return re.search(rf"^export type {name} = ([^;]+);", DTS, re.M)[1].replace("\n", " ").replace("|", " ").split()


def _doc_of(type_name: str) -> str:
    match = re.search(rf"/\*\*((?:(?!\*/).)*)\*/\nexport interface {type_name} \{{", DTS, re.S)
    assert match, f"no doc comment on {type_name}"
    return match[1]


@pytest.mark.parametrize("side, union", [("server_message", "ServerMessage"), ("client_message", "ClientMessage")])
def test_the_unions_have_one_member_per_type_of_their_side(side, union):
    schema = json.loads((SCHEMAS / f"{side}.json").read_text())
    members = _union(union)
    assert len(members) == len(schema["properties"]["type"]["enum"])
    for branch, member in zip(schema["allOf"], members):
        body = re.search(rf"export interface {member} \{{\n(.*?)\n\}}", DTS, re.S)[1]
        assert f'  type: "{branch["if"]["properties"]["type"]["const"]}";' in body  # the discriminant


def test_each_message_says_since_which_version():
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        if path.stem in ("defs", "envelope", "server_message", "client_message", "result"):
            continue
        name = "".join(w.capitalize() for w in path.stem.split("_"))
        name = "ErrorMessage" if name == "Error" else name
        assert f"@since {schema.get('x-since', '1.0')}" in _doc_of(name), name


def test_the_package_version_is_the_kit_version():
    kit = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert json.loads((PACKAGE / "package.json").read_text())["version"] == kit
