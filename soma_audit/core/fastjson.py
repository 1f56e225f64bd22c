"""orjson, when installed (the `live` extra): the one place that asks.

Decoding LIST pages, keying shared structures and writing the JSON report are several
times faster with it; each caller falls back to the standard library without it.
"""

from __future__ import annotations

import functools
from types import ModuleType


@functools.cache
def orjson() -> ModuleType | None:
    """The orjson module, imported on first use; None when it is not installed."""
    try:
        import orjson as module
    except ImportError:  # pragma: no cover - depends on the installation
        return None
    return module
