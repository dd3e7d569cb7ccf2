"""Training curves as a PNG drawn by matplotlib: losses and SWD against the step.

Imports only matplotlib (lazily, with the Agg canvas and no pyplot, so it is safe in a
web server's threads): the trainer writes losses.png with it and the dashboard draws the
same chart live from a run's metrics.json while the run is still training.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

COLOURS = {"loss_d": "#d62728", "loss_g": "#1f77b4", "swd": "#2ca02c"}
LABELS = {"loss_d": "discriminator loss", "loss_g": "generator loss", "swd": "SWD"}


def _series(entries: Sequence[Mapping[str, Any]], name: str) -> tuple[list[float], list[float]]:
    points = [(float(e["step"]), float(e[name])) for e in entries
              if name in e and "step" in e and e[name] is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _plot(axes, entries: Sequence[Mapping[str, Any]], names: Sequence[str], title: str,
          ylabel: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    drawn = False
    for name in names:
        steps, values = _series(entries, name)
        if steps:
            axes.plot(steps, values, color=COLOURS[name], label=LABELS[name],
                      marker="o" if len(steps) < 20 else None, markersize=3, linewidth=1.5)
            drawn = True
    if drawn:
        axes.legend(loc="upper right", fontsize=8)
    else:  # a run that has not logged yet still gets labelled, empty axes
        axes.text(0.5, 0.5, "no values yet", transform=axes.transAxes, ha="center",
                  va="center", color="#777777")


def training_curves_png(history: Sequence[Mapping[str, Any]],
                        metric_history: Sequence[Mapping[str, Any]],
                        size: tuple[int, int] = (800, 560), dpi: int = 100) -> bytes:
    """history: the loss windows ({"step", "loss_d", "loss_g"}); metric_history: the
    checkpoints' scores ({"step", "swd"}). Two panels sharing the step axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, swd_axes = figure.subplots(2, 1, sharex=True)
    _plot(loss_axes, history, ("loss_d", "loss_g"), "Losses (mean per log window)", "loss")
    _plot(swd_axes, metric_history, ("swd",), "Sliced Wasserstein distance at checkpoints "
          "(lower is better)", "SWD")
    swd_axes.tick_params(labelbottom=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
