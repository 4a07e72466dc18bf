"""A matplotlib backend (Agg underneath) that captures figures as PNG files.

Selected with ``MPLBACKEND=module://runner.mplbackend``. ``plt.show()`` saves
and closes every open figure, as a notebook does; at the end of the run the
worker saves the figures still open. A figure the code saved itself with
``savefig`` to a file is not captured again: the file comes back instead.

Importing this module does not import matplotlib: the backend's attributes
(``FigureCanvas``, ``show``...) are built on first access, which only
matplotlib makes, once the code has imported it.
"""

from __future__ import annotations

import os
from typing import Any

SAVED_ATTR = "_sandbox_tool_saved"
_state: dict[str, Any] = {"dir": "", "count": 0}


def configure(figures_dir: str) -> None:
    """Where captured figures go (called by the worker before the user's code runs)."""
    os.makedirs(figures_dir, exist_ok=True)
    _state["dir"] = figures_dir


def capture_open_figures() -> None:
    """Save every open figure the code did not save itself, then close them all."""
    import matplotlib.pyplot as plt

    for num in plt.get_fignums():
        fig = plt.figure(num)
        if not getattr(fig, SAVED_ATTR, False) and _state["dir"]:
            _state["count"] += 1
            path = os.path.join(_state["dir"], f"figure-{_state['count']}.png")
            # default layout: bbox_inches="tight" would draw the figure twice (2x the time);
            # zlib level 1: a quarter faster to encode here, about 20% larger
            fig.savefig(path, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    plt.close("all")


def _build() -> None:
    if _state.get("built"):
        return
    _state["built"] = True
    from matplotlib.backend_bases import _Backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg, _BackendAgg

    class FigureCanvasSandbox(FigureCanvasAgg):
        def print_figure(self, filename: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(filename, (str, os.PathLike)):
                setattr(self.figure, SAVED_ATTR, True)
            return super().print_figure(filename, *args, **kwargs)

    class _BackendSandbox(_BackendAgg):
        FigureCanvas = FigureCanvasSandbox

        @staticmethod
        def show(*args: Any, **kwargs: Any) -> None:
            capture_open_figures()

    _BackendSandbox.__module__ = __name__
    _Backend.export(_BackendSandbox)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    _build()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(name) from None
