"""Import graph of the dive_pyro package: cycles and imports that point up the layer order.

``python scripts/import_graph.py`` prints the counts and every offending edge; ``tests/test_architecture.py``
asserts that both are zero. Every import counts, including those inside functions: a lazy import
hides a cycle from the interpreter, not from the reader.

Layers, lowest first (a module may import from its own layer's package or any lower layer, never
from a higher one; ``models`` and ``guides`` never import each other -- they meet in ``inference``)::

    data  <  core  <  {models, guides, evaluation, viz}  <  inference  <  posterior  <  {api, demo}  <  cli
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# source folder of each installed package (pyproject's package-dir)
PACKAGE_DIRS = {
    "dive_pyro": ROOT / "dive_pyro",
    "dive_pyro.models": ROOT / "models",
    "dive_pyro.guides": ROOT / "guides",
    "dive_pyro.inference": ROOT / "inference",
}
LAYERS = [
    ("dive_pyro.data",),
    ("dive_pyro.core",),
    ("dive_pyro.models", "dive_pyro.guides", "dive_pyro.evaluation", "dive_pyro.viz"),
    ("dive_pyro.inference",),
    ("dive_pyro.posterior",),
    ("dive_pyro.api", "dive_pyro.demo"),
    ("dive_pyro.cli", "dive_pyro.__main__"),
]
# packages of one layer that must not import each other
SIBLINGS_APART = {("dive_pyro.models", "dive_pyro.guides"), ("dive_pyro.guides", "dive_pyro.models")}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in sorted(PACKAGE_DIRS.items(), key=lambda kv: -len(kv[0])):
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "dive_pyro" and parts and parts[0] in {"models", "guides", "inference"}:
                continue
            found.setdefault(name, path)
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # a module always runs its own packages' __init__: not an edge of the graph
            if target and target != name and not name.startswith(target + "."):
                out.add(target)
    return out


def layer_of(name: str) -> tuple[int, str] | None:
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return index, prefix
    return None


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for src, targets in sorted(edges.items()):
        ls = layer_of(src)
        for dst in sorted(targets):
            ld = layer_of(dst)
            if ls is None or ld is None:
                continue
            if ld[0] > ls[0] or (ls[1], ld[1]) in SIBLINGS_APART:
                bad.append((src, dst))
    return bad


def unlayered(edges: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in edges if layer_of(m) is None and m != "dive_pyro")


def main() -> int:
    edges = graph()
    cyc, up, loose = cycles(edges), upward(edges), unlayered(edges)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports")
    print(f"import cycles: {len(cyc)}")
    for c in cyc:
        print("  cycle:", " <-> ".join(c))
    print(f"upward imports: {len(up)}")
    for s, d in up:
        print(f"  {s} -> {d}")
    print(f"modules outside the layers: {len(loose)}")
    for m in loose:
        print("  ", m)
    return 1 if (cyc or up) else 0


if __name__ == "__main__":
    raise SystemExit(main())
