"""The README's Python examples run as written."""

import re
from pathlib import Path

import pyro
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, monkeypatch, tmp_path):
    from dive_pyro.inference import registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # examples may register variants
    with pyro.settings.context(module_local_params=pyro.settings.get("module_local_params")):
        exec(compile(BLOCKS[index], f"README block {index}", "exec"), {})


def test_readme_has_examples():
    assert len(BLOCKS) >= 2
