"""The wheel carries the schemas: a plain (non-editable) install can export and use them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """A fresh venv with the wheel built from this tree installed into it.

    The venv borrows the already-installed dependencies (system site packages) so the test
    needs no network, but the wheel itself goes into the venv, which comes first on sys.path.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(ROOT)],
        check=True, timeout=240,
    )
    wheel = next((tmp / "dist").glob("agent_events-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--force-reinstall", "-q", str(wheel)],
        check=True, timeout=240,
    )
    return env_dir, wheel


pytestmark = pytest.mark.slow


def test_wheel_contains_schemas_and_vectors(installed_wheel):
    import zipfile

    _, wheel = installed_wheel
    names = zipfile.ZipFile(wheel).namelist()
    assert "agent_events/schemas/v1/agent_completed.json" in names
    assert "agent_events/schemas/v1/server_message.json" in names
    assert any(n.startswith("agent_events/schemas/vectors/sequences/invalid/") for n in names)
    top_level = {n.split("/", 1)[0] for n in names}
    assert top_level == {"agent_events", next(n for n in top_level if n.endswith(".dist-info"))}, top_level


def test_installed_wheel_exports_schemas_that_validate_offline(installed_wheel, tmp_path):
    env_dir, _ = installed_wheel
    out = tmp_path / "exported"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(env_dir / "bin" / "agent-events"), "schema", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    snippet = textwrap.dedent(f"""
        import json, pathlib
        from agent_events import schemas
        assert pathlib.Path(schemas.__file__).is_relative_to({str(env_dir)!r}), schemas.__file__
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
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-c", snippet], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", str(len(list(out.glob("*.json"))))]
