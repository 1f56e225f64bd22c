"""Remediation output never escapes the target directory; templates are sandboxed.

Through the CLI (``soma-audit --manifests DIR apply RECIPE --yes``) with hostile configs:
a service name with ``../``, an absolute layout path, and a symlinked output folder that
points outside the tree. Whatever the exit code, no byte is written outside DIR.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest
import yaml

from soma_audit.core.paths import data_path
from soma_audit.remediation.render import environment
from tests.reliability.conftest import Figures, Run, demo_tree, run_cli

pytestmark = pytest.mark.reliability


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _apply(tmp_path: Path, recipe: str, config: dict[str, object] | None,
           prepare: Callable[[Path, Path], None] | None = None) -> tuple[Path, Path, Run]:
    """Apply ``recipe`` with ``config`` to a fresh demo tree; ``prepare`` edits it first."""
    tree = demo_tree(tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    if prepare is not None:
        prepare(tree, outside)
    argv = ["--manifests", str(tree), "apply", recipe, "--yes"]
    if config is not None:
        config_file = tmp_path / "hostile.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        argv = ["--config", str(config_file), *argv]
    run = run_cli(argv, {"SOMA_AUDIT_STATE": str(tmp_path / "state")}, tmp_path)
    assert "Traceback" not in run.stderr, run.stderr
    return tree, outside, run


def _assert_confined(tmp_path: Path, tree: Path, outside: Path) -> None:
    assert not _files(outside), f"written outside the tree: {_files(outside)}"
    strays = [p for p in tmp_path.rglob("*") if p.is_file()
              and not any(parent in p.parents for parent in (tree, tmp_path / "state",
                                                             outside))
              and p.name != "hostile.yaml"]
    assert not strays, strays
    assert not any(p.name.startswith("escape") for p in tmp_path.parent.glob("*"))


def test_service_name_with_dot_dot(tmp_path: Path, figures: Figures) -> None:
    """A service named ``../../../escape-dotdot`` beside the bundled ones: the config
    refuses it at load (a Service name is a DNS-1123 label), nothing is rendered."""
    default = yaml.safe_load(data_path("config", "default.yaml").read_text(encoding="utf-8"))
    services = [*default["services"], {"name": "../../../escape-dotdot", "port": 8080}]
    config = {"services": services}
    tree, outside, run = _apply(tmp_path, "netpol-services", config)
    figures.add("paths", "service name with ../ (netpol-services)",
                {"exit": run.code, "stderr": run.stderr.strip().splitlines()[-1:]})
    _assert_confined(tmp_path, tree, outside)
    assert run.code == 2 and "services[12].name: must be a DNS-1123 label" in run.stderr, \
        run.stderr


def test_absolute_layout_path(tmp_path: Path, figures: Figures) -> None:
    """``layout.k6_scripts`` set to an absolute folder outside the tree."""
    target = tmp_path / "outside" / "abs-scripts"
    config = {"layout": {"k6_scripts": str(target)}}
    tree, outside, run = _apply(tmp_path, "k6-scripts", config)
    figures.add("paths", "absolute layout path (k6-scripts)",
                {"exit": run.code, "stderr": run.stderr.strip().splitlines()[-1:]})
    _assert_confined(tmp_path, tree, outside)
    assert not target.exists()
    assert run.code == 2 and "is absolute" in run.stderr, run.stderr


def test_symlinked_output_folder(tmp_path: Path, figures: Figures) -> None:
    """``k8s/network`` in the tree is a symlink to a folder outside it."""
    def link(tree: Path, outside: Path) -> None:
        network = tree / "k8s" / "network"
        if network.exists():
            for child in network.iterdir():
                child.unlink()
            network.rmdir()
        network.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(outside, network)

    tree, outside, run = _apply(tmp_path, "netpol-services", None, link)
    figures.add("paths", "symlinked output folder (netpol-services)",
                {"exit": run.code, "stderr": run.stderr.strip().splitlines()[-1:]})
    _assert_confined(tmp_path, tree, outside)
    assert run.code == 2 and "symlink" in run.stderr, run.stderr


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{{ config.__class__.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
])
def test_templates_are_sandboxed(source: str, figures: Figures) -> None:
    """The real template environment refuses to reach Python internals."""
    figures.count("paths", "sandbox escapes attempted")
    template = environment().from_string(source)
    with pytest.raises((jinja2.exceptions.SecurityError, jinja2.exceptions.UndefinedError)):
        template.render(config=object())
