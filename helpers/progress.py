"""``tqdm`` for the labs: tqdm.auto's progress bar, saved as text.

In Jupyter with ipywidgets, tqdm.auto draws a widget. A saved notebook keeps only a reference
to the widget's model, so once the kernel is gone the reopened notebook shows "Error
displaying widget: model not found". This bar is the same widget while it runs; when it closes,
its output is replaced by the bar's final text line (``training: 100%|██████████| 2000/2000
[00:01<00:00]``), which is what gets saved. Outside a notebook it is tqdm.auto's text bar.
"""
from __future__ import annotations

from tqdm.auto import tqdm as _auto_tqdm

try:
    from tqdm.notebook import tqdm_notebook as _notebook_tqdm
except ImportError:  # pragma: no cover - tqdm always ships it; ipywidgets may be missing
    _notebook_tqdm = None

__all__ = ["tqdm", "trange"]

TEXT_WIDTH = 100  # columns of the saved text line


class tqdm(_auto_tqdm):  # noqa: N801 - tqdm's own name, a drop-in replacement
    """``tqdm.auto.tqdm`` whose notebook widget leaves its final text line behind."""

    def __init__(self, *args, **kwargs):
        self._handle = None
        self._notebook = _notebook_tqdm is not None and issubclass(_auto_tqdm, _notebook_tqdm)
        show_now = kwargs.pop("display", True)
        if self._notebook:
            kwargs["display"] = False  # shown below, with a display id to replace it later
        super().__init__(*args, **kwargs)
        if self._notebook and show_now and getattr(self, "container", None) is not None and self.delay <= 0:
            self._show()

    def _show(self) -> None:
        from IPython.display import display

        self._handle = display(self.container, display_id=True)
        self.displayed = True

    def display(self, *args, **kwargs):
        if self._notebook and kwargs.get("check_delay", True) and self.delay > 0 \
                and not getattr(self, "displayed", True):
            self._show()  # a delayed bar appears now; tqdm's own display would have no id
        return super().display(*args, **kwargs)

    def close(self):
        super().close()
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is None:
            return
        failed = bool(self.total and self.n < self.total)
        text = self.as_text() if (self.leave or failed) else ""
        handle.update({"text/plain": text}, raw=True)
        try:
            self.container.close()  # its view is gone; free the widget's model
        except Exception:  # noqa: BLE001 - cosmetic
            pass

    def as_text(self) -> str:
        """The bar as one line of text, as tqdm prints it in a terminal."""
        meter = dict(self.format_dict)
        if not isinstance(meter.get("ncols"), int):
            meter["ncols"] = TEXT_WIDTH
        return self.format_meter(**meter)


def trange(*args, **kwargs) -> tqdm:
    """``tqdm(range(*args), **kwargs)``."""
    return tqdm(range(*args), **kwargs)
