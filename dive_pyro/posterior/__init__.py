"""The posterior of a fitted DIVE model: export as a DataTree (:mod:`.export`), checks against
the generator's ground truth (:mod:`.diagnostics`, :mod:`.scoring`, :mod:`.calibration`,
:mod:`.sbc`, :mod:`.importance`, :mod:`.reference`, :mod:`.report`), figures (:mod:`.plots`) and
the ArviZ view (:mod:`.arviz_view`, the only module that imports ArviZ).
"""

from dive_pyro.posterior.export import LATENT_SITES, load_posterior, sample_posterior, save_posterior, to_datatree
from dive_pyro.posterior.report import check_posterior, write_check_report
from dive_pyro.posterior.sbc import sbc

__all__ = [
    "LATENT_SITES",
    "check_posterior",
    "load_posterior",
    "sample_posterior",
    "save_posterior",
    "sbc",
    "to_datatree",
    "write_check_report",
]
