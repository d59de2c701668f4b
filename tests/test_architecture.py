"""How loadstack's modules may import each other: the launcher/master seam runs one way.

The import graph is read from the source (every ``import``, also those inside functions, which
hide a cycle from Python but not from a reader), so a new cycle fails here with the modules
named, before anyone has to untangle it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import loadstack

PACKAGE = Path(loadstack.__file__).parent

# Cycles not yet taken apart (issue 26), each a group of modules that reach each other.  A group
# may shrink; no module may join one, and no new group may appear.
KNOWN_CYCLES = {
    # Importing any user installs the plugin (loadstack.users), and the plugin wires every
    # feature, chains included, whose steps use the users again.
    "plugin": {
        "loadstack.auth",
        "loadstack.auth.local",
        "loadstack.auth.oauth2",
        "loadstack.auth.preflight",
        "loadstack.chains.engine",
        "loadstack.chains.kinds",
        "loadstack.chains.kinds.amqp",
        "loadstack.chains.kinds.await_",
        "loadstack.chains.kinds.base",
        "loadstack.chains.kinds.branch",
        "loadstack.chains.kinds.http",
        "loadstack.chains.kinds.pause",
        "loadstack.chains.kinds.python",
        "loadstack.chains.kinds.redis",
        "loadstack.chains.kinds.sql",
        "loadstack.chains.kinds.ws",
        "loadstack.chains.loader",
        "loadstack.chains.metrics",
        "loadstack.chains.runtime",
        "loadstack.chains.user",
        "loadstack.checks",
        "loadstack.data.draw",
        "loadstack.data.teardown",
        "loadstack.gates",
        "loadstack.inspect.sampling",
        "loadstack.junit",
        "loadstack.master",
        "loadstack.metrics.aggregate",
        "loadstack.metrics.collector",
        "loadstack.metrics.otlp",
        "loadstack.metrics.server",
        "loadstack.plugin",
        "loadstack.profiles",
        "loadstack.report.history",
        "loadstack.results",
        "loadstack.runcontext",
        "loadstack.shape",
        "loadstack.telemetry",
        "loadstack.telemetry.setup",
        "loadstack.telemetry.spans",
        "loadstack.user_classes",
        "loadstack.users",
        "loadstack.users.base",
        "loadstack.users.http",
        "loadstack.users.postgres",
        "loadstack.users.rabbitmq",
        "loadstack.users.redis",
        "loadstack.users.websocket",
        "loadstack.window_spread",
        "loadstack.windows",
        "loadstack.workload.feeders",
        "loadstack.workload.intended",
        "loadstack.workload.plan",
        "loadstack.workload.runtime",
    },
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["loadstack", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every name an import statement of the module may load, wherever the statement is."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
                )
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imported(name, path):
            # ``import a.b.c`` runs a/__init__.py and a/b/__init__.py too.
            parts = imported.split(".")
            targets |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[name] = {t for t in targets if t in modules and t not in (name, "loadstack")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Groups of modules that import each other, directly or around (Tarjan's components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_new_import_cycle_and_the_known_ones_listed_as_they_are() -> None:
    found = cycles(import_graph())
    for group in found:
        assert any(group <= members for members in KNOWN_CYCLES.values()), (
            f"a new import cycle: {sorted(group)}"
        )
    for label, members in KNOWN_CYCLES.items():
        # Taken apart, or smaller: KNOWN_CYCLES shrinks with it, so the list stays the truth.
        assert members in found, f"KNOWN_CYCLES[{label!r}] is no longer one cycle: {sorted(members)}"


def test_the_launchers_never_import_the_run_sequence_or_the_master() -> None:
    graph = import_graph()
    launcher_side = [m for m in graph if m.startswith("loadstack.launchers") or m == "loadstack.background"]
    for module in launcher_side:
        assert "loadstack.lifecycle" not in graph[module] or module == "loadstack.background", module
        assert not graph[module] & {"loadstack.master", "loadstack.plugin"}, module
    assert not any("loadstack.lifecycle" in group for group in cycles(graph))


def test_the_master_does_not_import_the_plugin_that_installs_it() -> None:
    assert "loadstack.plugin" not in import_graph()["loadstack.master"]


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []
