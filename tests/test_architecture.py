"""The architecture, held by tests read from the code itself (the AST of every module under src/).

- the reference agent never imports the conformance kit (an agent author installs the agent, not
  the harness that judges it; the run rules they share live in :mod:`agent_events.run_rules`);
- no import cycle among the modules of ``src/`` (module-level imports, including those inside a
  ``try``/``if`` at module level; imports under ``if TYPE_CHECKING:`` and inside functions are
  excluded: they do not run when the module is imported);
- no module over about 600 lines, but for the short list below, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "agent_events"
MAX_LINES = 600
#: modules allowed over MAX_LINES, and why (keep this short; each entry is a debt with its reason)
OVER_LIMIT: dict[str, str] = {
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module, module: str, is_package: bool):
    """(imported module, line) for every import that runs when ``module`` is imported."""

    def walk(body):
        for node in body:
            if isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    yield from walk(block)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                yield from walk(node.body)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, node.lineno
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # `from package import module` needs the module only (its package, an ancestor,
                # is initialised first by Python whatever the code says); a name of the package
                # itself is an edge to the package
                submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
                if len(submodules) < len(node.names):
                    yield target, node.lineno
                for submodule in submodules:
                    yield submodule, node.lineno

    yield from walk(tree.body)


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = graph.setdefault(module, {})
        for target, line in _module_level_imports(tree, module, path.name == "__init__.py"):
            if target in MODULES and target != module:
                edges.setdefault(target, line)
    return graph


def _all_imports(path: Path):
    """Every import anywhere in the file (functions and TYPE_CHECKING blocks included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def test_the_reference_agent_never_imports_the_conformance_kit():
    agent = {m: p for m, p in MODULES.items() if m == f"{PACKAGE}.reference_agent"
             or m.startswith(f"{PACKAGE}.reference_agent.")}
    assert agent, "no reference_agent modules found: the test would pass vacuously"
    bad = [f"{p.relative_to(SRC)}:{line} imports {target}" for m, p in agent.items()
           for target, line in _all_imports(p)
           if target == f"{PACKAGE}.conformance" or target.startswith(f"{PACKAGE}.conformance.")]
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _explain_cycle(graph, component: list[str]) -> str:
    members = set(component)
    edges = [f"  {a} -> {b} (line {line})" for a in component for b, line in graph[a].items() if b in members]
    return "cycle among " + ", ".join(component) + ":\n" + "\n".join(edges)


def test_src_has_no_import_cycle():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "\n".join(_explain_cycle(graph, c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    """The guard itself can fail: a two-module loop, and a package importing its own submodule's importer."""
    assert _cycles({"a": {"b": 1}, "b": {"a": 2}, "c": {}}) == [["a", "b"]]
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) == []


def test_no_module_is_over_the_line_limit():
    over = {}
    for module, path in MODULES.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and module not in OVER_LIMIT:
            over[module] = lines
    assert not over, f"modules over {MAX_LINES} lines (split them, or justify them in OVER_LIMIT): {over}"


def test_the_over_limit_list_is_not_stale():
    for module in OVER_LIMIT:
        assert module in MODULES, module
        assert len(MODULES[module].read_text(encoding="utf-8").splitlines()) > MAX_LINES, module


def test_the_session_knows_its_host_only_through_the_host_interface():
    """No server<->session loop, not even for type checking: a Session sees a SessionHost."""
    session = MODULES[f"{PACKAGE}.reference_agent.session"]
    server = f"{PACKAGE}.reference_agent.server"
    assert not [line for target, line in _all_imports(session) if target == server or target.startswith(server + ".")]
    from agent_events.reference_agent import AgentServer, ServerConfig
    from agent_events.reference_agent.session import SessionHost

    assert isinstance(AgentServer(ServerConfig(port=0)), SessionHost)
    # what the session uses of its host is what the interface names
    tree = ast.parse(session.read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute) and node.value.attr == "server"
            and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
             and isinstance(node.value, ast.Name) and node.value.id == "server"}
    members = {name for name in dir(SessionHost) if not name.startswith("_")} | set(SessionHost.__annotations__)
    assert used and used <= members, sorted(used - members)
