"""The build hook that compiles the client core with mypyc, where it can (issue 26, target 3).

The modules in ``agent_events._native.COMPILED`` are built to C by mypyc: the same Python sources,
in one group whose shared library stays inside the package (``agent_events/_core__mypyc*.so``).
An editable install (the README's commands) builds them in place, beside their ``.py``; a wheel
carries them, with the platform's tag. Whatever goes wrong (no C compiler, no mypyc, a compile
error), the build says why on stderr and installs the Python sources alone, which run as before:
a source install never fails for want of a compiler. ``AGENT_EVENTS_PURE_PYTHON=1`` compiles nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "src"
NATIVE = SRC / "agent_events" / "_native.py"


def _mypy_config(modules: list[str], cache_dir: str) -> str:
    """mypy's settings for the compile: the third-party packages need not be installed in the build
    environment (their types are ``Any``), and mypy's complaints about our compiled modules (about
    mixins it cannot follow, mostly) do not stop the build: the test suite, run compiled and pure
    (``tests/test_native.py``), is what holds the compiled modules to the sources' behaviour."""
    lines = ["[mypy]", "ignore_missing_imports = True", "follow_imports = silent", "warn_unused_configs = False",
             f"cache_dir = {cache_dir}"]
    for name in modules:
        lines += [f"[mypy-{name}]", "ignore_errors = True"]
    return "\n".join(lines) + "\n"


def _native():
    """``agent_events._native`` (its module list, names and hashes), loaded from its file: the package
    is not installed in the build environment, and this module imports nothing of it."""
    spec = importlib.util.spec_from_file_location("agent_events_build_native", NATIVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _remove_inplace(native) -> None:
    """What an earlier editable install compiled beside the sources: an install that does not compile
    (or whose compile fails) must not leave an older compiled core to run."""
    names = [*native.COMPILED, native.GROUP + "__mypyc"]
    for name in names:
        folder = Path(native.source_path(name)).parent
        for path in folder.glob(name.rpartition(".")[2] + ".*.so"):
            path.unlink()
    (SRC / "agent_events" / native.SOURCES_FILE).unlink(missing_ok=True)


def _say(message: str) -> None:
    print(f"agent-events build: {message}", file=sys.stderr, flush=True)


def probe_compiler(temp: str) -> None:
    """Compile a file that includes ``Python.h``, as mypyc's output does: a missing compiler or
    missing Python headers fail here in a fraction of a second, not after mypy's analysis."""
    import setuptools  # noqa: F401 - its distutils
    from distutils.ccompiler import new_compiler
    from distutils.errors import CompileError
    from distutils.sysconfig import customize_compiler, get_python_inc

    compiler = new_compiler()
    customize_compiler(compiler)
    probe = os.path.join(temp, "probe.c")
    Path(probe).write_text("#include <Python.h>\nint agent_events_probe(void) { return 0; }\n")
    try:
        compiler.compile([probe], output_dir=temp, include_dirs=[get_python_inc()])
    except CompileError as exc:
        raise RuntimeError(f"no working C compiler with Python's headers ({compiler.compiler_so[0]})") from exc


def compile_core(inplace: bool, out_dir: Path | None = None) -> list[Path]:
    """Compile the core with mypyc; the extension files built (in ``src/`` when ``inplace``, else in
    ``out_dir``). Raises on any failure: the caller falls back to the Python sources."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    native = _native()
    modules = native.COMPILED
    paths = [os.path.relpath(native.source_path(name), ROOT) for name in modules]
    with tempfile.TemporaryDirectory(prefix="agent-events-mypyc-") as temp:
        probe_compiler(temp)
        config = os.path.join(temp, "mypy.ini")
        Path(config).write_text(_mypy_config(list(modules), os.path.join(temp, "mypy-cache")))
        cwd = os.getcwd()
        os.chdir(ROOT)  # mypy names the modules from the paths, relative to here
        try:
            extensions = mypycify([f"--config-file={config}", *paths], opt_level="3", group_name=native.GROUP,
                                  target_dir=os.path.join(temp, "c"))
            dist = Distribution({"ext_modules": extensions, "package_dir": {"": "src"}, "script_name": "hatch_build.py"})
            build = dist.get_command_obj("build_ext")
            build.inplace = inplace
            build.build_lib = str(out_dir) if out_dir is not None else os.path.join(temp, "lib")
            build.build_temp = os.path.join(temp, "obj")
            build.ensure_finalized()
            build.run()
            built = [Path(p) for p in build.get_outputs()]
        finally:
            os.chdir(cwd)
    return built


class CompiledCoreHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        native = _native()
        inplace = version == "editable"
        if inplace:
            _remove_inplace(native)
        if native.pure_requested():
            _say(f"{native.PURE_ENV} is set: the Python sources only")
            return
        out_dir = Path(self.directory) / ".agent-events-compiled"
        try:
            built = compile_core(inplace, None if inplace else out_dir)
        except BaseException as exc:  # noqa: BLE001 - any failure means the pure-Python install
            if isinstance(exc, KeyboardInterrupt):
                raise
            if inplace:
                _remove_inplace(native)  # nothing half-built may stay beside the sources
            detail = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
            _say(f"the core is not compiled ({type(exc).__name__}: {detail[0]}); the Python sources run as they are")
            return
        # what was compiled, so that a compiled core never runs older than its sources (agent_events._native)
        record = (SRC / "agent_events" if inplace else out_dir / "agent_events") / native.SOURCES_FILE
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(native.source_hashes(), indent=1) + "\n")
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not inplace:
            for path in [*built, record]:
                build_data["force_include"][str(path)] = str(path.relative_to(out_dir))
        _say(f"compiled {len(built)} extension modules with mypyc")

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        shutil.rmtree(Path(self.directory) / ".agent-events-compiled", ignore_errors=True)
