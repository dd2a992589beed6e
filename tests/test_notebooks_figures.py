"""Every notebook runs in smoke mode under Jupyter's own (inline) backend and shows its figures.

This is how `make test` executes the notebooks (``notebooks/*.ipynb`` are not collected by nbmake in
the default run, so each runs once). The kernel gets no ``MPLBACKEND``: a library import that selected
a backend (e.g. ``matplotlib.use("Agg")``) would leave every plot cell without an image, and fail here.
"""

import os
import re
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# a cell draws a figure when it calls a plot_* helper or pyplot (its last line then ends in `;`)
FIGURE_CALL = re.compile(r"\bplot_\w+\(|\bplt\.(plot|imshow|figure|subplots)\(")


def figure_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and FIGURE_CALL.search(c.source)]


def has_image(cell) -> bool:
    return any("image/png" in out.get("data", {}) for out in cell.outputs)


def execute(path: Path, timeout: int = 600):
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(DIVE_PYRO_SMOKE="1", OMP_NUM_THREADS="1")
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3")
    client.execute(cwd=str(path.parent), env=env)  # as Jupyter opens it: from its folder
    return nb


def test_figure_cells_are_found():
    # the pattern must be able to fail: a plotting cell is recognised, a plain cell is not
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("plots.plot_sbc(x);"), nbformat.v4.new_code_cell("1")]
    )
    assert figure_cells(nb) == [0]
    with_figures = [p.name for p in NOTEBOOKS if figure_cells(nbformat.read(p, as_version=4))]
    assert "01_quickstart.ipynb" in with_figures and "03_posterior_checks.ipynb" in with_figures


def test_has_image_catches_a_cell_without_one():
    cell = nbformat.v4.new_code_cell("plt.plot([1])")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "[<Line2D>]"})]
    assert not has_image(cell)
    cell.outputs.append(nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"}))
    assert has_image(cell)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_shows_every_figure(path):
    nb = execute(path)
    blank = [i for i in figure_cells(nb) if not has_image(nb.cells[i])]
    assert not blank, f"{path.name}: plot cells {blank} show no image/png output (backend replaced?)"
