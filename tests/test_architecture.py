"""The folder tree is the architecture: no import cycles, no import up the layer order, and the
model and guide meet only in ``dive_pyro.inference`` (see ``scripts/import_graph.py``)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph)


def test_no_import_cycles():
    assert graph.cycles(graph.graph()) == []


def test_no_upward_imports_and_models_never_import_guides():
    assert graph.upward(graph.graph()) == []


def test_every_module_has_a_layer():
    assert graph.unlayered(graph.graph()) == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    edges = {"dive_pyro.models.a": {"dive_pyro.guides.b"}, "dive_pyro.guides.b": {"dive_pyro.models.a"}}
    assert graph.cycles(edges) == [["dive_pyro.guides.b", "dive_pyro.models.a"]]
    assert ("dive_pyro.data.x", "dive_pyro.inference.y") in graph.upward(
        {"dive_pyro.data.x": {"dive_pyro.inference.y"}}
    )


def test_no_lazy_module_getattr_work_arounds():
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("dive_pyro", "models", "guides", "inference")
        for p in (ROOT / folder).rglob("__init__.py")
        if "def __getattr__" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
