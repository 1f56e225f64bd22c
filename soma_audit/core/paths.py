"""Where the bundled data folders are, in a wheel and in a source checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

#: The ``soma_audit`` package folder (this module lives in its ``core/``).
_PACKAGE = Path(__file__).resolve().parent.parent


@cache
def data_root() -> Path:
    """The folder holding ``checks/``, ``remediations/``, ``manifests/``, ``config/``, ``demo/``.

    A wheel carries them as ``soma_audit/data/``; a source checkout (editable install)
    keeps them at the top of the repository.
    """
    packaged = _PACKAGE / "data"
    return packaged if packaged.is_dir() else _PACKAGE.parent


def data_path(*parts: str) -> Path:
    return data_root().joinpath(*parts)
