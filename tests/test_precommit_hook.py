"""The pre-commit hook (``.pre-commit-hooks.yaml``), run by pre-commit itself.

pre-commit builds the hook's environment from this repository, as a user's ``pre-commit install``
would (a virtualenv with the kit and its dependencies from PyPI), in a temporary git repository
holding recorded streams. The hooks run as ``git commit`` runs them: ``pre-commit run`` with a
config naming this repository at a commit, as ``pre-commit try-repo`` writes it (the commit holds
the working tree's uncommitted changes, as try-repo's does). Not try-repo itself: it builds the
hook's environment afresh on every call (a store in a temporary directory, whatever
``PRE_COMMIT_HOME`` says), where ``run`` builds it once into the module's ``PRE_COMMIT_HOME``.
Without pre-commit, git, a git checkout of this repository, or PyPI to build the environment
from, the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent_events import schemas

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
HOOK = "agent-events-validate"
VECTORS = dict(schemas.sequence_vectors())


def test_the_hook_is_declared_for_recorded_streams():
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == HOOK and hook["entry"] == "agent-events validate" and hook["language"] == "python"
    import re

    pattern = re.compile(hook["files"])
    assert pattern.search("recordings/run.jsonl") and pattern.search("x.ndjson")
    assert not pattern.search("run.json") and not pattern.search("notes.txt")


def _server_lines(name: str) -> str:
    return "".join(json.dumps(f["msg"]) + "\n" for f in VECTORS[name]["frames"] if f.get("dir") == "recv")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository with a good and a bad recording, and pre-commit's cache with the hook's
    environment built (by a first run that has nothing to check), shared by the module's tests."""
    try:
        import pre_commit  # noqa: F401
    except ImportError:
        pytest.skip("pre-commit is not installed (it is in the test extra: pip install -e '.[test]')")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    inside = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True)
    if inside.stdout.strip() != "true":
        pytest.skip(f"{ROOT} is not a git checkout: pre-commit try-repo needs one")
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--error-unmatch", ".pre-commit-hooks.yaml"],
                             capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip(".pre-commit-hooks.yaml is not committed yet: pre-commit try-repo reads the repository's commits")
    base = tmp_path_factory.mktemp("precommit")
    work = base / "repo"
    work.mkdir()
    env = {**os.environ, "PRE_COMMIT_HOME": str(base / "cache"),  # a fresh hook environment, pip's cache kept
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           # the hook's wiring is under test, not the compiled core (tests/test_native.py): its
           # environment installs the Python sources, without 16 s of compiling
           "AGENT_EVENTS_PURE_PYTHON": "1"}
    subprocess.run(["git", "init", "-q"], cwd=work, check=True, env=env)
    (work / "good.jsonl").write_text(_server_lines("valid/primary.json"))
    (work / "bad.jsonl").write_text(_server_lines("invalid/seq.contiguous.json"))
    (work / "bad.json").write_text(_server_lines("invalid/seq.contiguous.json"))  # not a .jsonl: not checked
    (work / "notes.txt").write_text("nothing to check here\n")
    subprocess.run(["git", "add", "."], cwd=work, check=True, env=env)
    # the repository and commit try-repo would name: HEAD, or a shadow commit of uncommitted changes
    from pre_commit.commands.try_repo import _repo_ref

    (base / "shadow").mkdir()
    repo_url, rev = _repo_ref(str(base / "shadow"), str(ROOT), None)
    config = base / "pre-commit-config.yaml"
    config.write_text(yaml.safe_dump({"repos": [{"repo": repo_url, "rev": rev, "hooks": [{"id": HOOK}]}]}))

    def try_repo(*files: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pre_commit", "run", "--config", str(config), HOOK,
                               "--files", *files], cwd=work, env=env, capture_output=True, text=True, timeout=600)

    first = try_repo("notes.txt")
    if first.returncode != 0:
        log = (base / "cache" / "pre-commit.log")
        detail = log.read_text(errors="replace")[-600:] if log.exists() else first.stdout[-600:]
        if "Installing environment" in first.stdout:
            pytest.skip(f"pre-commit could not build the hook's environment (PyPI unreachable?): {detail}")
        pytest.fail(f"pre-commit run failed before running the hook:\n{first.stdout}\n{detail}")
    return try_repo, first


def test_a_file_the_pattern_does_not_match_is_not_checked(repo):
    try_repo, first = repo
    assert "(no files to check)Skipped" in first.stdout
    done = try_repo("bad.json", "notes.txt")
    assert done.returncode == 0 and "(no files to check)Skipped" in done.stdout


def test_a_conformant_recording_passes(repo):
    try_repo, _ = repo
    done = try_repo("good.jsonl")
    assert done.returncode == 0, done.stdout
    assert "agent-events validate" in done.stdout and "Passed" in done.stdout


def test_a_broken_recording_fails_the_commit_naming_the_rule(repo):
    try_repo, _ = repo
    done = try_repo("good.jsonl", "bad.jsonl")
    assert done.returncode == 1, done.stdout
    assert "Failed" in done.stdout and "FAIL seq.contiguous [MUST] bad.jsonl:3" in done.stdout
    assert "expected: seq 2" in done.stdout and "observed: seq 3" in done.stdout
