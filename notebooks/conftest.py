"""`pytest notebooks/NAME.ipynb` runs a notebook through nbmake in smoke mode (tiny work, seconds each),
under Jupyter's inline backend; `make test` runs them all in tests/test_notebooks_figures.py."""

import os

os.environ.setdefault("DIVE_PYRO_SMOKE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
