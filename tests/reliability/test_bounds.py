"""Alias bombs, recursion, deep nesting and huge files: bounded in time and memory.

Each input is loaded by the real loader in a child process (``tests.reliability.measure``)
under a timeout; its wall time and peak RSS (``getrusage``) are asserted and recorded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.reliability.conftest import ROOT, Figures, python
from tests.reliability.measure import CASES

pytestmark = pytest.mark.reliability

#: Bounds for the refused inputs: refused in well under a second of work, little memory.
REFUSED_SECONDS = 10.0
REFUSED_RSS_MIB = 256.0
#: The largest file read (just under MAX_FILE_BYTES): slower, but bounded.
HUGE = "manifests: 30 MB valid stream"
HUGE_SECONDS = 240.0
HUGE_RSS_MIB = 2048.0


def _measure(case: str, scratch: Path, timeout: float) -> dict[str, object]:
    proc = subprocess.run([python(), "-m", "tests.reliability.measure", case, str(scratch)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("case", [c for c in CASES if c != HUGE])
def test_refused_quickly(case: str, tmp_path: Path, figures: Figures) -> None:
    """Bombs, recursion, depth and oversized files become one clear problem or error."""
    result = _measure(case, tmp_path, timeout=60)
    figures.add("bounds", case, result)
    assert float(result["seconds"]) < REFUSED_SECONDS  # type: ignore[arg-type]
    assert float(result["max_rss_mib"]) < REFUSED_RSS_MIB  # type: ignore[arg-type]
    outcome = result["outcome"]
    assert isinstance(outcome, dict)
    message = " ".join(outcome.get("problems") or [outcome.get("error") or ""])
    assert any(word in message for word in ("alias", "recursive", "nesting", "larger than"))


def test_huge_valid_file_is_bounded(tmp_path: Path, figures: Figures) -> None:
    """A valid stream just under the size limit loads completely within the bounds."""
    result = _measure(HUGE, tmp_path, timeout=HUGE_SECONDS + 60)
    figures.add("bounds", HUGE, result)
    outcome = result["outcome"]
    assert isinstance(outcome, dict) and outcome["objects"] > 100_000
    assert not outcome["problems"]
    assert float(result["seconds"]) < HUGE_SECONDS  # type: ignore[arg-type]
    assert float(result["max_rss_mib"]) < HUGE_RSS_MIB  # type: ignore[arg-type]
