"""The real test environment of soma-audit: kube-apiserver + etcd, OpenFGA, Kafka, Prometheus.

`python -m testenv up|down|status`, or from Python (pytest fixtures) `testenv.up()`,
`testenv.down()`, `testenv.state()`. See docs/testenv.md.
"""

from testenv.env import UpError, down, environment, state, status, up
from testenv.proc import ComponentError

__all__ = ["ComponentError", "UpError", "down", "environment", "state", "status", "up"]
