"""Loaded models shared by every component of a process.

Embedders and rerankers that name the same model with the same settings use one copy
of its weights (a server opening several knowledge bases loads them once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["shared_model"]

_MODELS: dict[Hashable, Any] = {}
_LOCK = threading.Lock()


def shared_model(key: Hashable, load: Callable[[], Any]) -> Any:
    """The model cached under ``key``, calling ``load()`` once to create it."""
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = load()
            _MODELS[key] = model
        return model
