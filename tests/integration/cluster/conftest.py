"""Fixtures of the live-cluster tests (tests/integration/cluster): admin access to the test
API server and fresh names. See kube_helpers.py for why audits are namespace-scoped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.cluster.kube_helpers import AdminKube, admin_kube


@pytest.fixture(scope="session")
def kube(kube_env: Any) -> AdminKube:
    """Admin (system:masters) access to the test API server."""
    return admin_kube(kube_env.admin_kubeconfig, kube_env.server)
