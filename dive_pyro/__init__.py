"""dive-pyro: DIVE (Disentangled Imputed Video autoEncoder, NeurIPS 2020) in Pyro.

Folders by role: ``dive_pyro.data`` (scenarios, fixed test sets, real video), ``dive_pyro.core``
(what model and guide share: config, plates, networks), ``dive_pyro.models`` (generative models),
``dive_pyro.guides`` (amortised guides), ``dive_pyro.inference`` (where they meet: the variant
registry, SVI training, posterior draws, scoring a trained model), ``dive_pyro.evaluation``
(metrics, baselines, published numbers, tables), ``dive_pyro.posterior`` (DataTree export,
diagnostics, plots, ArviZ view), ``dive_pyro.viz`` (frame figures), ``dive_pyro.cli``; and the
front door :class:`dive_pyro.Dive` (``dive_pyro.api``): fit, posterior, impute, predict, evaluate,
save/load in one object.
"""

from __future__ import annotations

from dive_pyro import data, evaluation, posterior, viz
from dive_pyro.api import Dive
from dive_pyro.core.config import DiveConfig
from dive_pyro.inference.registry import build, register_variant, variant_names

__version__ = "0.1.0"

__all__ = [
    "Dive",
    "DiveConfig",
    "__version__",
    "build",
    "data",
    "evaluation",
    "posterior",
    "register_variant",
    "variant_names",
    "viz",
]
