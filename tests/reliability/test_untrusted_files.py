"""Files of an audited repository, a config, a catalog or attestations cannot hang the
tool, exhaust its memory, stop the audit with a traceback or be echoed in a message.

Each case is the real ``soma-audit`` in a subprocess (wall time and peak RSS measured by
``wait4``). FIFOs, symlinks to devices and sparse files are made inside the test's temp
folder only: no system path is touched (links point at ``/dev/zero``, never write it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.reliability.conftest import Figures, Measured, demo_tree, run_measured
from tests.reliability.measure import LAUGHS, MERGE_BOMB

pytestmark = pytest.mark.reliability

#: Generous bounds: a demo audit takes a few seconds and ~100 MB.
MAX_SECONDS = 60
MAX_MB = 400
SECRET = "MARKER-b81d-private-credential-line"


def _bounded(run: Measured, codes: tuple[int, ...] = (0, 1, 2)) -> None:
    assert run.code in codes, (run.code, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.seconds < MAX_SECONDS and run.peak_mb < MAX_MB, (run.seconds, run.peak_mb)


def _audit_json(tree: Path, folder: Path, *extra: str) -> tuple[Measured, dict]:
    run = run_measured(["--manifests", str(tree), "--ci", "--format", "json", *extra], folder,
                       timeout=MAX_SECONDS)
    _bounded(run)
    return run, (json.loads(run.stdout) if run.code in (0, 1) else {})


def _problems(tree: Path, folder: Path) -> tuple[Measured, dict[str, str]]:
    """The files the audit could not read (the table lists them: ``unreadable: where:
    message``), by where."""
    run = run_measured(["--manifests", str(tree), "--ci"], folder, timeout=MAX_SECONDS)
    _bounded(run)
    found = {}
    for line in run.stdout.splitlines():
        kind, _, rest = line.partition(": ")
        if kind in ("unreadable", "skipped"):
            where, _, message = rest.partition(": ")
            found[where] = message
    return run, found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return demo_tree(tmp_path / "repo")


def _special_files(tree: Path, outside: Path) -> dict[str, str]:
    """name in the tree → what the reader must say about it. The FIFO and the sparse file
    the links point at live in the repository (a link leading out of it is refused before
    anything is opened: the device links say so)."""
    outside.mkdir()
    data = tree / "data"
    data.mkdir()
    fifo = data / "pipe"
    os.mkfifo(fifo)
    sparse = data / "big.bin"
    with sparse.open("wb") as handle:
        handle.truncate(2 << 30)  # 2 GiB, no block written
    folder = tree / "k8s" / "special"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "fifo.yaml")
    (folder / "to-fifo.yaml").symlink_to(fifo)
    (folder / "zero.yaml").symlink_to("/dev/zero")
    (folder / "urandom.yaml").symlink_to("/dev/urandom")
    (folder / "sparse.yaml").symlink_to(sparse)
    (folder / "loop-a.yaml").symlink_to(folder / "loop-b.yaml")
    (folder / "loop-b.yaml").symlink_to(folder / "loop-a.yaml")
    return {"fifo.yaml": "a FIFO, not read", "to-fifo.yaml": "a FIFO, not read",
            "zero.yaml": "a symbolic link leading out of the repository, not read",
            "urandom.yaml": "a symbolic link leading out of the repository, not read",
            "sparse.yaml": "larger than 33554432 bytes, not read",
            "loop-a.yaml": "not read", "loop-b.yaml": "not read"}


def test_fifos_devices_sparse_files_and_loops_in_the_manifests(tree: Path, tmp_path: Path,
                                                               figures: Figures) -> None:
    expected = _special_files(tree, tmp_path / "outside")
    run, found = _problems(tree, tmp_path)
    assert run.code == 1
    problems = {Path(k).name: v for k, v in found.items() if "special" in k}
    for name, message in expected.items():
        assert message in problems.get(name, ""), (name, problems)
    figures.add("files", "FIFO, /dev/zero, /dev/urandom, 2 GiB sparse, symlink loop",
                {"seconds": round(run.seconds, 1), "peak RSS MB": round(run.peak_mb)})


@pytest.mark.parametrize("command", ["render", "diff", "apply"])
def test_special_files_during_remediation(command: str, tree: Path, tmp_path: Path) -> None:
    """render/diff/apply read the repository too: same bounds, no traceback."""
    _special_files(tree, tmp_path / "outside")
    argv = ["--manifests", str(tree), command, "pss-namespaces"]
    run = run_measured([*argv, "--yes"] if command == "apply" else argv, tmp_path,
                       timeout=MAX_SECONDS,
                       env={"SOMA_AUDIT_STATE": str(tmp_path / "state")})
    _bounded(run)


@pytest.mark.parametrize("kind", ["config", "catalog", "attestations"])
@pytest.mark.parametrize("special", ["fifo", "zero", "sparse"])
def test_special_file_as_config_catalog_or_attestations(kind: str, special: str,
                                                        tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / special
    if special == "fifo":
        os.mkfifo(path)
    elif special == "zero":
        path.symlink_to("/dev/zero")
    else:
        with path.open("wb") as handle:
            handle.truncate(2 << 30)
    config = tmp_path / "config.yaml"
    if kind == "config":
        config = path
    else:
        key = "catalogs" if kind == "catalog" else "attestations"
        value = [str(path)] if kind == "catalog" else str(path)
        config.write_text(yaml.safe_dump({key: value}), encoding="utf-8")
    run = run_measured(["--manifests", str(tree), "--config", str(config), "--ci"], tmp_path,
                       timeout=MAX_SECONDS)
    _bounded(run, (2,))
    assert "not read" in run.stderr, run.stderr


#: Repository data files read outside the manifests loader, and a check that reads each.
DATA_FILES = {
    "scripts/k6/profiles.yaml": "k6.profiles",
    "infra/alertmanager/alertmanager.yml": "slo.alert-routing",
    "infra/openfga/model.fga.yaml": "fga.scenarios",
}


@pytest.mark.parametrize("bomb", [LAUGHS, MERGE_BOMB], ids=["laughs", "merge"])
@pytest.mark.parametrize("relative", sorted(DATA_FILES))
def test_alias_bombs_in_repository_data_files(relative: str, bomb: str, tree: Path,
                                              tmp_path: Path, figures: Figures) -> None:
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bomb, encoding="utf-8")
    run, report = _audit_json(tree, tmp_path, "--only", DATA_FILES[relative])
    evidence = " ".join(e["message"] for c in report["checks"] for e in c["evidence"])
    assert report["checks"][0]["status"] in ("error", "fail"), report["checks"]
    assert "alias" in evidence or "invalid YAML" in evidence, evidence
    figures.add("files", f"alias bomb in {relative}",
                {"seconds": round(run.seconds, 1), "peak RSS MB": round(run.peak_mb)})


BAD_SCALARS = {
    "impossible date": "when: 2024-13-45\n",
    "number of 5,000 digits": f"n: {'9' * 5000}\n",
    "!!int abc": "n: !!int abc\n",
    "!!float .": "n: !!float .\n",
    "!!timestamp nope": "n: !!timestamp nope\n",
}


@pytest.mark.parametrize("case", sorted(BAD_SCALARS))
def test_bad_scalars_are_a_problem_of_their_file_and_line(case: str, tree: Path,
                                                          tmp_path: Path) -> None:
    body = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata:\n  "
            + BAD_SCALARS[case])
    (tree / "k8s" / "bad.yaml").write_text(body, encoding="utf-8")
    run, found = _problems(tree, tmp_path)
    assert run.code == 1
    assert "invalid YAML" in found.get("k8s/bad.yaml:9", ""), found


@pytest.mark.parametrize("where", ["waiver", "attestation"])
def test_impossible_dates_in_waivers_and_attestations(where: str, tree: Path,
                                                      tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    if where == "waiver":
        config.write_text("waivers:\n  - {check: k6.ci, reason: r, expires: 2027-02-30}\n",
                          encoding="utf-8")
    else:
        attest = tmp_path / "attest.yaml"
        attest.write_text("attestations:\n  - {check: ops.docs, by: a, note: n,\n"
                          "     expires: 2027-02-30}\n", encoding="utf-8")
        config.write_text(f"attestations: {attest}\n", encoding="utf-8")
    run = run_measured(["--manifests", str(tree), "--config", str(config), "--ci"], tmp_path,
                       timeout=MAX_SECONDS)
    _bounded(run, (2,))
    line = "line 2" if where == "waiver" else "line 3"
    assert line in run.stderr and "not a valid timestamp" in run.stderr, run.stderr


CREDENTIALS = {
    "a bare line": f"{SECRET}\n",
    "an INI file": f"[default]\naws_secret_access_key = {SECRET}\n",
    "a netrc": f"machine example.com login me password {SECRET}\n",
    "an unterminated quote": f"token: '{SECRET}\n  more\n",
    "a tab": f"\t{SECRET}\n",
    "a tag": f"!{SECRET} x\n",
}


@pytest.mark.parametrize("kind", ["config", "catalog", "attestations"])
@pytest.mark.parametrize("shape", sorted(CREDENTIALS))
def test_errors_name_the_file_and_never_quote_it(kind: str, shape: str, tree: Path,
                                                  tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text(CREDENTIALS[shape], encoding="utf-8")
    config = secret
    if kind != "config":
        config = tmp_path / "config.yaml"
        value = [str(secret)] if kind == "catalog" else str(secret)
        config.write_text(yaml.safe_dump({"catalogs" if kind == "catalog" else kind: value}),
                          encoding="utf-8")
    run = run_measured(["--manifests", str(tree), "--config", str(config), "--ci", "--debug"],
                       tmp_path, timeout=MAX_SECONDS)
    _bounded(run, (2,))
    assert str(secret) in run.stderr, run.stderr
    assert SECRET not in run.stderr and SECRET not in run.stdout, run.stderr


@pytest.mark.parametrize("command", ["render", "diff", "apply"])
@pytest.mark.parametrize("special", ["loop", "fifo"])
def test_special_file_at_a_remediation_target(command: str, special: str, tree: Path,
                                              tmp_path: Path) -> None:
    """The file a recipe writes (``k8s/namespaces.yaml``) is a symlink loop or a FIFO:
    one clear error (or a render that does not read it), nothing replaced."""
    target = tree / "k8s" / "namespaces.yaml"
    target.unlink(missing_ok=True)
    if special == "loop":
        target.symlink_to(target.with_name("namespaces-2.yaml"))
        target.with_name("namespaces-2.yaml").symlink_to(target)
    else:
        os.mkfifo(target)
    argv = ["--manifests", str(tree), command, "pss-namespaces"]
    run = run_measured([*argv, "--yes"] if command == "apply" else argv, tmp_path,
                       timeout=MAX_SECONDS, env={"SOMA_AUDIT_STATE": str(tmp_path / "state")})
    _bounded(run)
    if command != "render":
        assert run.code == 2 and ("symlink loop" in run.stderr or "FIFO" in run.stderr), \
            run.stderr
    assert target.is_symlink() if special == "loop" else target.is_fifo()
