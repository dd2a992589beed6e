"""Amortised guides for the DIVE models (paper §3.1-3.2)."""

from dive_pyro.guides.dive import DiveGuide, impute
from dive_pyro.guides.variants import BernoulliDiveGuide, DdpaeGuide, EnumDiveGuide

__all__ = ["BernoulliDiveGuide", "DdpaeGuide", "DiveGuide", "EnumDiveGuide", "impute"]
