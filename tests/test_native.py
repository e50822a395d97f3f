"""The compiled core (issue 26, target 3): the same sources, compiled where a C compiler is, and the
pure-Python path kept and tested.

The suite runs against whatever the install built: compiled where ``pip install -e .`` found a
compiler (CI does), the sources otherwise. These tests hold the two paths to each other:

* where a compiler is, the core *is* compiled, and is not older than its sources;
* the core's own tests pass on the pure-Python path (``AGENT_EVENTS_PURE_PYTHON=1``);
* a compiled core older than its sources is never run;
* without a C compiler, building the package installs the sources (the build says why);
* the fields that the compiled checker keeps in slots are declared once, as the lists that name them.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agent_events import _native
from agent_events.conformance.core import evidence, latencies

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(_native.__file__).resolve().parent
#: the core's own tests, which the pure-Python path must pass too
CORE_TESTS = ["tests/test_checker.py", "tests/test_client_batches.py", "tests/test_latencies.py",
              "tests/test_sequence_vectors.py", "tests/test_wire.py", "tests/test_wire_sync.py",
              "tests/test_dialect_judge_fast_path.py"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != _native.PURE_ENV}
    env.update(extra)
    return env


def _annotations(path: Path, class_name: str) -> list[tuple[str, str]]:
    """(field, annotation) of a class body, read from the source (a compiled class keeps no __annotations__)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return [(n.target.id, ast.unparse(n.annotation)) for n in node.body
                    if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    raise LookupError(class_name)


def _compiler_problem(tmp_path: Path) -> str | None:
    """Why the build would not compile here (the build's own probe, hatch_build.probe_compiler), or None."""
    sys.path.insert(0, str(ROOT))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(ROOT))
    try:
        hatch_build.probe_compiler(str(tmp_path))
    except RuntimeError as exc:
        return str(exc)
    return None


def test_the_evidence_counters_are_declared_once_as_evidence_names_them():
    fields = _annotations(PACKAGE / "conformance" / "core" / "checker_fields.py", "CheckerFields")
    counters = [name for name, annotation in fields if annotation == "int"]
    assert counters == list(evidence.COUNTERS)
    names = [name for name, _ in fields]
    assert len(names) == len(set(names)), "a field declared twice breaks the compiled checker"


def test_the_latency_series_are_declared_as_kinds_names_them():
    fields = _annotations(PACKAGE / "conformance" / "core" / "latencies.py", "Latencies")
    assert fields == [(kind, "Samples") for kind in latencies.KINDS]


def test_where_a_c_compiler_is_the_core_runs_compiled_and_current(tmp_path):
    if _native.pure_requested():
        pytest.skip(f"{_native.PURE_ENV} is set: this run is the pure-Python path")
    problem = _compiler_problem(tmp_path)
    if problem is not None:
        pytest.skip(f"{problem}: the install runs the sources, as it should")
    assert _native.stale_sources() == [], "the compiled core is older than its sources: pip install -e . again"
    assert _native.compiled_modules() == list(_native.COMPILED), (
        "a C compiler is here but the core is not compiled: reinstall (pip install -e .) and read the "
        "build's message, which says why")


def test_the_core_tests_pass_on_the_pure_python_path():
    probe = subprocess.run([sys.executable, "-c", "from agent_events import _native; print(_native.compiled_modules())"],
                           env=_env(**{_native.PURE_ENV: "1"}), capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *CORE_TESTS],
                          cwd=ROOT, env=_env(**{_native.PURE_ENV: "1"}), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_a_compiled_core_older_than_its_sources_runs_the_sources_and_says_so(tmp_path):
    if not (PACKAGE / _native.SOURCES_FILE).exists():
        pytest.skip("the core is not compiled in this install: nothing can be older than its sources")
    copy = tmp_path / "src" / "agent_events"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "schemas").symlink_to(ROOT / "schemas")  # where a source tree keeps them
    record = json.loads((copy / _native.SOURCES_FILE).read_text())
    edited = copy / "conformance" / "core" / "latencies.py"
    edited.write_text(edited.read_text() + "\n# edited after the build\n")
    code = "from agent_events import _native; print(_native.compiled_modules())"
    proc = subprocess.run([sys.executable, "-c", code], env=_env(PYTHONPATH=str(tmp_path / "src")),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"  # all of them: they share one compiled library
    assert "latencies.py changed since it was built" in proc.stderr
    assert set(record) == set(_native.COMPILED)


@pytest.mark.slow
def test_without_a_c_compiler_the_build_installs_the_sources_and_says_why(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "--disable-pip-version-check",
                           "-w", str(tmp_path), str(ROOT)],
                          env=_env(CC="/bin/false", LDSHARED="/bin/false"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "the core is not compiled" in proc.stdout + proc.stderr, proc.stdout[-3000:]
    wheels = list(tmp_path.glob("*.whl"))
    assert len(wheels) == 1 and wheels[0].name.endswith("-py3-none-any.whl"), wheels
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    assert "agent_events/conformance/core/checker.py" in names
