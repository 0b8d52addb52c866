"""Model loading without progress bars of its own on the user's terminal.

transformers and huggingface_hub draw tqdm bars (``Loading weights: 100%|...``,
downloads) on stderr while a model loads. A library must not write to the terminal; the
bars are switched off for the duration of a load and restored after, so a program that
wants them elsewhere keeps them.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["quiet_loading"]

_lock = threading.RLock()


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Switch transformers' and huggingface_hub's progress bars off inside the block."""
    with _lock:
        restore = []
        with suppress(ImportError):
            tf = importlib.import_module("transformers.utils.logging")
            if tf.is_progress_bar_enabled():
                tf.disable_progress_bar()
                restore.append(tf.enable_progress_bar)
        with suppress(ImportError):
            hub = importlib.import_module("huggingface_hub.utils")
            if not hub.are_progress_bars_disabled():
                hub.disable_progress_bars()
                restore.append(hub.enable_progress_bars)
        try:
            yield
        finally:
            for enable in restore:
                enable()
