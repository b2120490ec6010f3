"""No import circle inside ``src/fourdnex``: the layers stay in one direction.

Every ``import`` / ``from ... import`` statement of a module counts as an edge, at module
level and inside functions alike: a deferred import still makes the importing module
depend on the imported one, and a circle through one is only a circle that has not
failed yet. ``if TYPE_CHECKING:`` imports count too (they are dependencies of the
types). Relative imports are resolved against the package; ``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to ``pkg`` (its ``__init__``).
Importing ``pkg.mod`` does not count as importing ``pkg``: a package that re-exports
its submodules is not in a circle with them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fourdnex

SRC = Path(fourdnex.__file__).parent.parent


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted((SRC / "fourdnex").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The fourdnex modules ``module`` imports -> the line of the first such import."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.setdefault(target, node.lineno)
    return edges


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module: line}, over ``src/fourdnex``."""
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import circle ``[a, b, ..., a]`` of ``graph``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_finder_reports_a_circle_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) is None
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]


def test_the_graph_sees_relative_deferred_and_package_imports() -> None:
    graph = import_graph()
    assert "fourdnex.train.objective" in graph["fourdnex.train.trainer"]  # module level
    assert "fourdnex.train.probe" in graph["fourdnex.train.trainer"]  # inside a function
    assert "fourdnex.models" in graph["fourdnex.train.trainer"]  # `from fourdnex.models import`
    assert len(graph) > 100


def test_no_import_circle_in_the_package() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle is not None:
        steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:], strict=False)]
        raise AssertionError("import circle: " + "; ".join(steps))
