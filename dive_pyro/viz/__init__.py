"""Figures of videos (frame grids, scenes) and loss curves; see :mod:`dive_pyro.viz.frames`."""

from dive_pyro.viz.frames import plot_frame_grid, plot_loss_curve, plot_scene

__all__ = ["plot_frame_grid", "plot_loss_curve", "plot_scene"]
