"""Notebooks run under `make test` through nbmake in smoke mode (tiny work, seconds each)."""

import os

os.environ.setdefault("DIVE_PYRO_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")
