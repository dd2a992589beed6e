"""Both the editable install and a built wheel must import all four packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["dive_pyro", "dive_pyro.data", "dive_pyro.models", "dive_pyro.guides", "dive_pyro.inference"]


def _import_check(cwd: Path, extra_path: str | None = None) -> subprocess.CompletedProcess:
    code = "import importlib, sys\n" + "".join(
        f"m = importlib.import_module({p!r}); print(m.__name__, m.__file__)\n" for p in PACKAGES
    )
    env = None
    if extra_path:
        import os

        env = dict(os.environ, PYTHONPATH=extra_path)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


def test_editable_install_imports_every_package_from_elsewhere(tmp_path):
    out = _import_check(tmp_path)
    assert out.returncode == 0, out.stderr
    # the mapped folders are what gets imported
    assert str(ROOT / "models") in out.stdout and str(ROOT / "inference") in out.stdout


def test_wheel_contains_and_imports_every_package(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    res = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    # pyproject.toml itself draws no setuptools warning (licence as SPDX string, data folders declared)
    warned = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("WARNING")]
    assert not warned, warned
    (wheel,) = dist.glob("dive_pyro-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in PACKAGES:
        assert pkg.replace(".", "/") + "/__init__.py" in names, pkg
    for name in ("tiny-cpu", "tiny-cpu-occlusion", "tiny-cpu-out_of_scene", "tiny-cpu-elastic"):
        assert f"dive_pyro/pretrained/{name}/checkpoint.pt" in names, name
    assert any(n.startswith("dive_pyro/data/assets/") and n.endswith(".npz") for n in names) or not list(
        (ROOT / "dive_pyro/data/assets").glob("*.npz")
    )
    target = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = _import_check(tmp_path, extra_path=str(target))
    assert out.returncode == 0, out.stderr
    assert str(target) in out.stdout and str(ROOT) not in out.stdout


def test_import_dive_pyro_exposes_subpackages_and_keeps_the_backend(tmp_path):
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import dive_pyro\n"
        "import dive_pyro.viz.frames, dive_pyro.posterior.plots\n"
        "print(dive_pyro.posterior.sample_posterior.__name__, dive_pyro.data.generate.__name__)\n"
        "print(dive_pyro.evaluation.__name__, dive_pyro.viz.__name__)\n"
        "print(matplotlib.get_backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[:4] == ["sample_posterior", "generate", "dive_pyro.evaluation", "dive_pyro.viz"]
    assert lines[-1] == "svg"  # the caller's backend: the library never selects one
