"""The house rules that keep microbbb readable, checked on the source:

- the derivative table comes first in primitives.py; Tensor, the tape and the reverse sweep
  fit in 450 lines; no function in the engine or in bbb is over 50 lines (by_hand's
  derivation excepted: it reads best as one commented function);
- imports go one way: no cycles inside bbb, and in the engine only the documented one
  (tensor.py imports the modules of its operators and backward at its end);
- no package imports or reaches into another package's underscore names.

Imports are read with ``ast``; those under ``if TYPE_CHECKING:`` (type hints only, never
executed) are not imports at run time and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "microbbb"
ENGINE_CYCLE = {("microbbb.engine.tensor", "microbbb.engine.gradients"),
                ("microbbb.engine.tensor", "microbbb.engine.primitives")}  # fmt: skip
LONG_FUNCTIONS_ALLOWED = {("microbbb/bbb/by_hand.py", "loss_and_gradients")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package_of(module: str) -> str:
    """microbbb.engine, microbbb.bbb, ... or the top-level module itself."""
    return ".".join(module.split(".")[:2])


def type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the statements inside ``if TYPE_CHECKING:``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def imports(module: str) -> list[tuple[str, list[str], ast.ImportFrom | ast.Import]]:
    """(imported module, names, node) for every run-time import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = type_checking_blocks(tree)
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, [], node) for a in node.names if a.name.startswith("microbbb")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("microbbb"):
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            found += [(s, [], node) for s in submodules] or [(target, names, node)]
    return found


def graph(prefix: str) -> dict[str, set[str]]:
    """Who imports whom among the modules under ``prefix``."""
    return {
        m: {t for t, _, _ in imports(m) if t.startswith(prefix) and t != m}
        for m in MODULES
        if m.startswith(prefix)
    }


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], path[len(path) :] = 1, [node]
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_table_comes_first_in_primitives():
    lines = (PACKAGE / "engine" / "primitives.py").read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines, 1) if " = Primitive(" in line)
    assert first <= 60, f"the first table entry is on line {first}"


def test_tensor_tape_and_reverse_sweep_fit_in_450_lines():
    files = ["tensor.py", "tape.py", "sweep.py"]
    sizes = {
        f: len((PACKAGE / "engine" / f).read_text(encoding="utf-8").splitlines()) for f in files
    }
    assert sum(sizes.values()) <= 450, sizes


@pytest.mark.parametrize("folder", ["engine", "bbb"])
def test_no_function_is_over_50_lines(folder):
    long = []
    for path in sorted((PACKAGE / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                key = (str(path.relative_to(ROOT)), node.name)
                if n > 50 and key not in LONG_FUNCTIONS_ALLOWED:
                    long.append(f"{key[0]}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def test_bbb_imports_go_one_way():
    assert cycle(graph("microbbb.bbb.")) is None


def test_the_engine_has_only_its_documented_import_cycle():
    edges = graph("microbbb.engine.")
    assert cycle(edges) is not None  # the documented one exists...
    for source, target in ENGINE_CYCLE:
        edges[source].discard(target)
    assert cycle(edges) is None  # ...and is the only one


def test_no_package_uses_another_package_underscore_names():
    offences = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        foreign = set()
        for target, names, node in imports(module):
            if package_of(target) == package_of(module):
                continue
            for alias in node.names:
                if alias.name in names or f"{target}" in MODULES:
                    foreign.add(alias.asname or alias.name)
            offences += [f"{module} imports {target}.{n}" for n in names if n.startswith("_")]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in foreign
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offences.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not offences, offences


# --- the checks themselves can fail -----------------------------------------------------------


def test_the_cycle_finder_finds_cycles():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_reader_sees_relative_and_function_level_imports():
    found = {t for t, _, _ in imports("microbbb.bbb.train")}
    assert {"microbbb.bbb.io", "microbbb.engine", "microbbb.optim"} <= found
    assert "microbbb.bbb.layers" not in {t for t, _, _ in imports("microbbb.bbb.io")}
