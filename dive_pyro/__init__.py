"""dive-pyro: DIVE (Disentangled Imputed Video autoEncoder, NeurIPS 2020) in Pyro.

Sub-packages: ``dive_pyro.data`` (Moving-MNIST scenarios), ``dive_pyro.metrics``,
``dive_pyro.models`` (generative models), ``dive_pyro.guides`` (amortised guides) and
``dive_pyro.inference`` (SVI training, evaluation, posterior sampling).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "build"]


def __getattr__(name: str):
    # lazy so that `import dive_pyro` stays cheap and free of import cycles
    if name == "build":
        from dive_pyro.models.registry import build

        return build
    raise AttributeError(f"module 'dive_pyro' has no attribute {name!r}")
