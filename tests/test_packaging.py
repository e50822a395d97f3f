"""The wheel as a user gets it: installed into a fresh venv (no borrowed site-packages), beside a
user project that owns top-level ``schemas``, ``conformance`` and ``reference_agent`` packages,
and with every runtime dependency at its declared minimum.

These install from the package index pip is configured with (CI reaches it as developers do),
so they are slow: a few tens of seconds, once per module.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH pointing into this checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _pip(python: Path, *args: str) -> None:
    """Install into the venv of ``python`` with this interpreter's pip (``pip --python``): the venv
    gets what it installs and nothing of ours, without a pip of its own to bootstrap first (ensurepip
    took 4 s a venv; nothing here needs pip inside the venv)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=480, env=_clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _fresh_venv(where: Path) -> Path:
    venv.create(where, system_site_packages=False, with_pip=False)
    return where / "bin" / "python"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True, timeout=240)
    return next(dist.glob("agent_events-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and what it declares (plus pytest, which a user project has)."""
    python = _fresh_venv(tmp_path_factory.mktemp("venv") / "env")
    _pip(python, str(wheel), "pytest")
    return python


def declared_minimums() -> dict[str, str]:
    """``name -> minimum`` of every runtime dependency, read from pyproject.toml (each must have one)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    minimums = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", requirement.split(";")[0].strip())
        assert match, f"runtime dependency without a plain '>=' minimum: {requirement!r}"
        minimums[match[1]] = match[2]
    return minimums


def test_the_wheel_holds_nothing_top_level_but_agent_events(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    dist_info = {t for t in top_level if t.endswith(".dist-info")}
    assert top_level - dist_info == {"agent_events"}, sorted(top_level)
    assert "agent_events/schemas/v1/agent_completed.json" in names
    assert "agent_events/schemas/v1/server_message.json" in names
    assert any(n.startswith("agent_events/schemas/vectors/sequences/invalid/") for n in names)
    # the live viewer's static files, served by `agent-events serve` at GET /
    assert {f"agent_events/reference_agent/viewer/{f}" for f in ("index.html", "viewer.js", "viewer.css")} <= set(names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "agent-events = agent_events.conformance.cli:main" in text
    assert "agent_events = agent_events.conformance.tooling.pytest_plugin" in text


def test_installed_wheel_exports_schemas_that_validate_offline(installed, tmp_path):
    out = tmp_path / "exported"
    proc = subprocess.run([str(installed.parent / "agent-events"), "schema", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=_clean_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    snippet = textwrap.dedent(f"""
        import json, pathlib
        from agent_events import schemas
        assert pathlib.Path(schemas.__file__).is_relative_to({str(installed.parent.parent)!r}), schemas.__file__
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        docs = [json.loads(p.read_text()) for p in pathlib.Path({str(out)!r}).glob("*.json")]
        registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
        by_name = {{d["$id"].rsplit("/", 1)[1]: d for d in docs}}
        v = Draft202012Validator(by_name["agent_completed.json"], registry=registry)
        good = {{"type": "agent_completed", "run_id": "r1", "seq": 9, "emitted_at": 1.0, "agent_name": "A",
                "payload": {{"message": "done", "result": {{"success": True, "steps_generated": 5,
                "execution_time_ms": 2847, "has_partial_extraction": False, "fallback_used": False}}}}}}
        v.validate(good)
        good["payload"]["result"]["steps_generated"] = -1
        assert not v.is_valid(good)
        print("ok", len(docs))
    """)
    proc = subprocess.run([str(installed), "-c", snippet], capture_output=True, text=True,
                          cwd=tmp_path, env=_clean_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", str(len(list(out.glob("*.json"))))]


# -- a user project that owns the names the kit's parts are known by ------------------------

USER_PROJECT = {
    "schemas/__init__.py": "from schemas.users import UserCreate, UserOut\n",
    "schemas/users.py": textwrap.dedent("""
        from dataclasses import dataclass

        @dataclass
        class UserCreate:
            name: str

        @dataclass
        class UserOut:
            id: int
            name: str
    """),
    "conformance/__init__.py": "PROJECT_CONFORMANCE = 'the team owns this name'\n",
    "conformance/pytest_plugin.py": "OWNED = True\n",
    "reference_agent/__init__.py": "def serve():\n    return 'the team agent'\n",
    "tests/__init__.py": "",
    "tests/test_users.py": textwrap.dedent("""
        import conformance
        import reference_agent
        from schemas import UserCreate, UserOut

        def test_the_project_sees_its_own_packages():
            assert UserOut(id=1, name=UserCreate(name="a").name).name == "a"
            assert conformance.PROJECT_CONFORMANCE == "the team owns this name"
            assert reference_agent.serve() == "the team agent"
    """),
    "tests/test_agent.py": textwrap.dedent("""
        def test_the_team_checks_its_agent_with_the_fixture(agent_events_check):
            report = agent_events_check(scenarios=["primary"], first_event_ms=60_000, delivery_ms=60_000,
                                        tool_gap_ms=60_000)
            assert report.conformant, report.to_dict()
    """),
}


@pytest.fixture()
def user_project(tmp_path) -> Path:
    for name, text in USER_PROJECT.items():
        path = tmp_path / "project" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "project"


def _run(args: list[str], cwd: Path, env_extra: dict[str, str] | None = None, timeout: float = 180):
    env = {**_clean_env(), **(env_extra or {})}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def test_a_user_project_with_its_own_schemas_conformance_and_reference_agent_keeps_working(installed, user_project):
    bin_ = installed.parent
    # the project's own tests, as `python -m pytest` (cwd on sys.path) and as the `pytest` script
    for command in ([str(installed), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_users.py"],
                    [str(bin_ / "pytest"), "-q", "-p", "no:cacheprovider", "tests/test_users.py"]):
        proc = _run(command, user_project, {"PYTHONPATH": "."} if command[0].endswith("pytest") else None)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "1 passed" in proc.stdout
    # the kit's fixtures from the project's tests (the plugin starts a reference agent)
    proc = _run([str(installed), "-m", "pytest", "-q", "-p", "no:cacheprovider"], user_project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    # the Python API from the project root
    api = ("from agent_events import conformance, reference_agent\n"
           "import schemas, conformance as own\n"
           "assert schemas.UserCreate and own.PROJECT_CONFORMANCE\n"
           "with reference_agent.run_in_thread(host='127.0.0.1', port=0, llm_delay_ms=0) as server:\n"
           "    report = conformance.check(server.url, scenarios=['primary'], first_event_ms=60_000,\n"
           "                               delivery_ms=60_000, tool_gap_ms=60_000)\n"
           "print('conformant' if report.conformant else 'not conformant')\n")
    proc = _run([str(installed), "-c", api], user_project)
    assert proc.returncode == 0 and proc.stdout.strip() == "conformant", proc.stdout + proc.stderr


def test_the_plugin_options_check_a_live_endpoint_from_a_user_project(installed, user_project):
    bin_ = installed.parent
    server = subprocess.Popen([str(bin_ / "agent-events"), "serve", "--port", "0", "--llm-delay-ms", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=user_project,
                              env=_clean_env())
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:"), server.stderr.read() if server.poll() is not None else url
        proc = _run([str(installed), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--agent-events-url", url,
                     "--agent-events-scenario", "primary", "--agent-events-first-event-ms", "60000",
                     "--agent-events-delivery-ms", "60000", "--agent-events-tool-gap-ms", "60000"], user_project)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        passed = int(re.search(r"(\d+) passed", proc.stdout)[1])
        assert passed > 2, proc.stdout  # the project's two tests and the generated conformance items
        proc = _run([str(bin_ / "agent-events"), "check", url, "--scenario", "primary", "-q"], user_project,
                    {"PYTHONPATH": "."})
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- the declared minimum of every runtime dependency ---------------------------------------

CORE_TESTS = ["tests/test_checker.py", "tests/test_schemas.py", "tests/test_sequence_vectors.py",
              "tests/test_schema_validation.py", "tests/test_check_reference.py", "tests/test_reference_agent_runs.py",
              "tests/test_validate_cli.py"]


def test_the_declared_minimum_versions_run_the_demo_and_the_core_tests(wheel, tmp_path):
    minimums = declared_minimums()
    assert {"websockets", "jsonschema", "jsonschema-rs"} <= set(minimums)
    python = _fresh_venv(tmp_path / "env")
    pins = [f"{name}=={version}" for name, version in minimums.items()]
    _pip(python, str(wheel), *pins, "pytest", "pytest-timeout", "hypothesis")
    versions = _run([str(python), "-c", "import importlib.metadata as m; "
                     f"print(' '.join(m.version(n) for n in {list(minimums)!r}))"], tmp_path)
    installed_versions = [_normal(v) for v in versions.stdout.split()]
    assert installed_versions == [_normal(v) for v in minimums.values()], versions.stdout + versions.stderr
    demo = _run([str(python.parent / "agent-events"), "demo", "-q", "--report", f"json={tmp_path / 'demo.json'}"],
                tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    core = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *CORE_TESTS], ROOT, timeout=300)
    assert core.returncode == 0, core.stdout[-3000:] + core.stderr[-3000:]
    assert "passed" in core.stdout and " failed" not in core.stdout


def _normal(version: str) -> tuple[int, ...]:
    """A release version as numbers without trailing zeros: ``4.18`` and ``4.18.0`` are one version."""
    parts = [int(p) for p in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
