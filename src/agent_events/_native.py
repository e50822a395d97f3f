"""The compiled core: which modules mypyc compiled, and the switch back to their Python sources.

The client core's hot path (the checker and its mixins, the client core, the latency series, the
wire parser) is compiled with mypyc when the package is built where a C compiler is (see
``hatch_build.py`` at the repository's root: :data:`COMPILED` is its list). The compiled modules
are the same Python sources, built to C: there is no second implementation, and every module keeps
its ``.py`` beside its extension. Where no compiler is, the build installs the sources alone, and
everything runs as before.

``AGENT_EVENTS_PURE_PYTHON=1`` in the environment, before ``agent_events`` is imported, makes every
compiled module load from its ``.py`` instead (:class:`_PureFinder`): the test suite runs the core's
tests both ways (``tests/test_native.py``), and a user can rule the compiled core out when chasing a
bug. The build honours the same variable: it then compiles nothing.

A compiled core never runs code older than its sources. The build records a hash of each compiled
source (:data:`SOURCES_FILE`); when a source no longer matches (a developer edited ``checker.py``
after ``pip install -e .``), every compiled module loads from its source, with a warning that says
so. The modules share one compiled library, so it is all of them or none.

The decorators mypyc reads (``trait``, ``mypyc_attr``) come from ``mypy_extensions`` when it is
installed; otherwise they are the identity, since they only mean something to the compiler.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import importlib.util
import os
import sys
from typing import Any

try:
    from mypy_extensions import mypyc_attr, trait
except ImportError:  # not installed: the decorators only mean something to mypyc
    def trait(cls: Any) -> Any:  # type: ignore[no-redef,misc]
        return cls

    def mypyc_attr(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef,misc]
        return lambda cls: cls

#: The modules the build compiles, in one mypyc group (their calls to each other stay native).
COMPILED = (
    "agent_events.conformance.core.checker",
    "agent_events.conformance.core.checker_fields",
    "agent_events.conformance.core.client",
    "agent_events.conformance.core.evidence",
    "agent_events.conformance.core.latencies",
    "agent_events.conformance.core.latency_judging",
    "agent_events.conformance.core.run_ownership",
    "agent_events.conformance.live.wire_core",
)
#: The group's shared library, inside the one import namespace (``agent_events/_core__mypyc*.so``).
GROUP = "agent_events._core"
#: Set (to anything but ``""`` or ``0``) before import: every compiled module loads from its source.
PURE_ENV = "AGENT_EVENTS_PURE_PYTHON"
#: Written by the build beside this module: ``{module: sha256 of the source it compiled}``.
SOURCES_FILE = "_core_sources.json"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def source_path(name: str) -> str:
    """The ``.py`` of one of our modules (``agent_events.x.y`` -> ``<package>/x/y.py``)."""
    return os.path.join(_PACKAGE_DIR, *name.split(".")[1:]) + ".py"


def source_hashes() -> dict[str, str]:
    """sha256 of each compiled module's source, as the build records them."""
    out = {}
    for name in COMPILED:
        with open(source_path(name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def stale_sources() -> list[str] | None:
    """The compiled modules whose source changed since the build compiled it; ``None`` when nothing
    was compiled here (no record of the build)."""
    try:
        with open(os.path.join(_PACKAGE_DIR, SOURCES_FILE), encoding="utf-8") as f:
            recorded = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return list(COMPILED)
    try:
        now = source_hashes()
    except OSError:
        return []  # a wheel without its sources: the compiled modules are all there is
    return [name for name in COMPILED if recorded.get(name) != now[name]]


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED` that this process runs compiled (imports them to see)."""
    out = []
    for name in COMPILED:
        module = sys.modules.get(name) or importlib.import_module(name)
        if not (getattr(module, "__file__", None) or "").endswith(".py"):
            out.append(name)
    return out


class _PureFinder:
    """Finds each compiled module's ``.py`` beside its extension and loads that instead."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        if name not in COMPILED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return spec
        source = source_path(name)
        if not os.path.exists(source):
            return spec  # a wheel without its sources: the compiled module is all there is
        return importlib.util.spec_from_file_location(name, source)


def _use_sources() -> None:
    if not any(isinstance(f, _PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureFinder())


if __name__ != "agent_events._native":
    pass  # loaded by path by the build hook (hatch_build.py), for its constants and hashes only
elif pure_requested():
    _use_sources()
else:
    _stale = stale_sources()
    if _stale:
        import warnings

        _use_sources()
        warnings.warn(f"agent-events: the compiled core is older than its sources ({', '.join(n.rpartition('.')[2] for n in _stale)}.py "
                      "changed since it was built): the Python sources run instead; `pip install -e .` compiles them again",
                      RuntimeWarning, stacklevel=2)
