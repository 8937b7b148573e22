"""The package's layout as the architecture section states it: no two parts of
``gateway`` import each other (a cycle means two rooms that are really one), and the
records never import the transfer feature (what both need lives beside them)."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent


def _part(module: str) -> str:
    """``gateway.transfer.table`` → ``gateway.transfer``; a top-level module is its own part."""
    return ".".join(module.split(".")[:2])


def _runtime_imports(tree: ast.Module) -> set[str]:
    """Every ``gateway.…`` module imported at run time (``if TYPE_CHECKING:`` blocks left out)."""
    found: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m == "gateway" or m.startswith("gateway.")}


def part_graph(root: Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("gateway", *path.relative_to(root).with_suffix("").parts))
        part = _part(module.removesuffix(".__init__"))
        targets = {_part(m) for m in _runtime_imports(ast.parse(path.read_bytes()))}
        graph.setdefault(part, set()).update(targets - {part, "gateway"})
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle once, as the path that closes it (depth-first, three colours)."""
    found: list[list[str]] = []
    colour: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        colour[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in colour:
                visit(nxt, [*path, nxt])
        colour[node] = 2

    for node in sorted(graph):
        if node not in colour:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_planted_cycle_and_only_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_parts_of_the_gateway_import_each_other() -> None:
    graph = part_graph(ROOT)
    assert {"gateway.transfer", "gateway.records", "gateway.process"} <= graph.keys()
    assert cycles(graph) == []


def test_the_records_never_import_the_transfer_feature() -> None:
    graph = part_graph(ROOT)
    assert "gateway.transfer" not in graph["gateway.records"]
    assert "gateway.catalogue" in graph["gateway.records"]  # what both use, beside both


def test_no_module_of_the_transfer_feature_is_over_250_lines_but_the_state_table() -> None:
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines())
             for path in (ROOT / "transfer").glob("*.py")}
    assert "services.py" in sizes and "table.py" in sizes
    assert {name: n for name, n in sizes.items() if n > 250 and name != "table.py"} == {}
