"""The posterior of a fitted DIVE model: export as a DataTree (:mod:`.export`), diagnostics
against the generator's ground truth (:mod:`.diagnostics`, :mod:`.report`), figures
(:mod:`.plots`) and the ArviZ view (:mod:`.arviz_view`, the only module that imports ArviZ).
"""

from dive_pyro.posterior.export import LATENT_SITES, load_posterior, sample_posterior, save_posterior, to_datatree
from dive_pyro.posterior.report import check_posterior, check_tree, sbc, write_check_report

__all__ = [
    "LATENT_SITES",
    "check_posterior",
    "check_tree",
    "load_posterior",
    "sample_posterior",
    "save_posterior",
    "sbc",
    "to_datatree",
    "write_check_report",
]
