"""Probes for the k6 area (see checks/k6.yaml): profiles as data, a script per profile,
validated and read by the real ``k6 inspect``, and a CI pipeline that runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from soma_audit.core.model import Evidence, Outcome, Status
from soma_audit.domain.k6 import (
    ProfilesError,
    first_error,
    k6_invocations,
    profile_name,
    profile_problems,
    read_profiles,
    static_options,
    threshold_problems,
    thresholds_decided,
    thresholds_text,
)
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    failed,
    passed,
    probe,
    repofiles,
    verdict,
)


def _profiles_file(ctx: ProbeContext) -> tuple[Path, Path, str]:
    return repofiles.locate(ctx, ctx.config.layout.k6_profiles)


def _file_profiles(ctx: ProbeContext) -> list[Any] | None:
    """The profiles file's entries, None when there is no such file."""
    repo, path, where = _profiles_file(ctx)
    if not path.is_file():
        return None
    try:
        return read_profiles(repofiles.read_text(repo, path))
    except ProfilesError as exc:
        raise ProbeError(f"{where}: {exc}") from None


def _profile_names(ctx: ProbeContext) -> list[str]:
    """Every profile a script is expected for: the configured ones and the repository's."""
    names = [p.name for p in ctx.config.k6.profiles]
    for entry in _file_profiles(ctx) or []:
        name = profile_name(entry)
        if name and name not in names:
            names.append(name)
    return names


@probe("k6.profiles")
def profiles(ctx: ProbeContext, params: Params) -> Outcome:
    """Profiles kept as data drive the scripts; the configured profiles must be among them."""
    _, _, where = _profiles_file(ctx)
    configured = [p.name for p in ctx.config.k6.profiles]
    entries = _file_profiles(ctx)
    if entries is None:
        expected = f"; expected profiles {', '.join(configured)}" if configured else ""
        return failed(ev(where, f"missing: load profiles are not kept as data{expected}"))
    if not entries:
        return failed(ev(where, "no profiles defined"))
    problems: list[Evidence] = []
    seen: list[str] = []
    for index, entry in enumerate(entries):
        name = profile_name(entry)
        label = f"profile {name}" if name else f"profiles[{index}]"
        problems += [ev(where, f"{label}: {problem}") for problem in profile_problems(entry)]
        if name in seen:
            problems.append(ev(where, f"{label}: defined twice"))
        if name:
            seen.append(name)
    problems += [
        ev(where, f"profile {name} is configured but not defined here")
        for name in configured
        if name not in seen
    ]
    if problems:
        return failed(*problems)
    summary = ", ".join(f"{e['name']} ({e['executor']})" for e in entries)
    return passed(ev(where, f"{len(entries)} profiles: {summary}"))


def _scripts_dir(ctx: ProbeContext) -> tuple[Path, Path]:
    repo, directory, _ = repofiles.locate(ctx, ctx.config.layout.k6_scripts)
    return repo, directory


@probe("k6.scripts")
def scripts(ctx: ProbeContext, params: Params) -> Outcome:
    """Each profile is only exercised when a script (``<profile>.js``) exists for it."""
    repo, directory = _scripts_dir(ctx)
    names = _profile_names(ctx)
    if not names:
        raise ProbeError("no load profiles: neither the config nor the profiles file defines any")
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for name in names:
        script = directory / f"{name}.js"
        where = repofiles.relative(repo, script)
        if not script.is_file():
            problems.append(ev(where, f"missing: no script for profile {name}"))
        elif not repofiles.read_text(repo, script).strip():
            problems.append(ev(where, f"empty script for profile {name}"))
        else:
            ok.append(ev(where, f"script for profile {name}"))
    return verdict(problems, ok)


def _script_files(ctx: ProbeContext) -> tuple[Path, list[Path], Outcome | None]:
    """The entry scripts (``*.js`` directly in the scripts folder), or a failing outcome."""
    repo, directory = _scripts_dir(ctx)
    found = sorted(directory.glob("*.js")) if directory.is_dir() else []
    if not found:
        where = repofiles.relative(repo, directory)
        return repo, [], failed(ev(where, "no k6 scripts (*.js) found"))
    return repo, found, None


#: Why a script is read statically: k6 runs a script's init code to read its options.
NOT_RUN = ("k6 inspect was not run: it runs the script's init code, which is repository code "
           "(allow it with --run-repo-code or `run_repo_code: true`)")


@probe("k6.inspect")
def inspect(ctx: ProbeContext, params: Params) -> Outcome:
    """``k6 inspect --execution-requirements`` loads the script and validates its options,
    scenarios and thresholds exactly as ``k6 run`` would, without sending a request. It runs
    the script's init code, so only with the user's opt-in; without it each script is
    parsed as JavaScript (a syntax error fails) and the check is skipped, saying so."""
    repo, found, none = _script_files(ctx)
    if none:
        return none
    problems, parsed = _parsed(repo, found)
    if not ctx.config.run_repo_code:
        notes = [ev(where, f"valid JavaScript; {NOT_RUN}") for _, where in parsed]
        return failed(*problems) if problems else Outcome(Status.SKIP, tuple(notes))
    ok: list[Evidence] = []
    for script, where in parsed:
        run = ctx.tools.run(
            "k6", "inspect", "--execution-requirements", script.name, cwd=script.parent
        )
        if run.returncode < 0:
            raise ProbeError(f"k6 inspect {where} was killed (signal {-run.returncode})")
        if run.returncode != 0:
            message = first_error(run.stderr) or f"exit code {run.returncode}"
            problems.append(ev(where, f"k6 inspect: {message}"))
            continue
        try:
            options = json.loads(run.stdout)
        except ValueError:
            options = {}
        options = options if isinstance(options, dict) else {}
        scenarios = options.get("scenarios")
        count = len(scenarios) if isinstance(scenarios, dict) else 0
        needs = (f"max VUs {_figure(options.get('maxVUs'))}, "
                 f"total {_figure(options.get('totalDuration'))}")
        ok.append(ev(where, f"k6 inspect: valid ({count} scenarios, {needs})"))
    return verdict(problems, ok)


def _figure(value: Any) -> str:
    """A number or a duration k6 computed, else ``?`` (never text the script chose)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9.]+(?:[hms]|ms|µs|ns)(?:[0-9.]+"
                                               r"(?:[hms]|ms|µs|ns))*", value):
        return value
    return "?"


def _parsed(repo: Path, found: list[Path]) -> tuple[list[Evidence], list[tuple[Path, str]]]:
    """Each script parsed as JavaScript (never run): the syntax errors, and the scripts
    that parse with their repository-relative names."""
    problems: list[Evidence] = []
    parsed: list[tuple[Path, str]] = []
    for script in found:
        where = repofiles.relative(repo, script)
        try:
            static_options(repofiles.read_text(repo, script))
        except ValueError as exc:
            problems.append(ev(where, str(exc)))
            continue
        parsed.append((script, where))
    return problems, parsed


def _read_options(ctx: ProbeContext, repo: Path, script: Path
                  ) -> tuple[dict[str, Any] | None, str]:
    """(options, "") or (None, why they could not be read): from ``k6 inspect`` with the
    opt-in to run repository code, else read statically from the script's text."""
    if ctx.config.run_repo_code:
        run = ctx.tools.run("k6", "inspect", script.name, cwd=script.parent)
        try:
            options = json.loads(run.stdout) if run.returncode == 0 else None
        except ValueError:
            options = None
        if isinstance(options, dict):
            return options, ""
        reason = first_error(run.stderr) or f"exit code {run.returncode}"
        return None, f"options not readable (k6 inspect: {reason})"
    try:
        options, undecided = static_options(repofiles.read_text(repo, script))
    except ValueError as exc:
        return None, f"options not readable: {exc}"
    if options is None and not undecided:
        return {}, ""
    if options is None or not thresholds_decided(options):
        places = ", ".join(dict.fromkeys(u.where for u in undecided)) or "options"
        return None, (f"thresholds not decided without running the script ({places} "
                      "known only at run time); --run-repo-code lets k6 inspect read them")
    return options, ""


@probe("k6.thresholds")
def thresholds(ctx: ProbeContext, params: Params) -> Outcome:
    """Thresholds make a load test fail on a regression (k6 exits 99). Options are read by
    a JavaScript parser from the script's literals; a value only running the script gives
    is an error saying so, unless the user lets ``k6 inspect`` run it."""
    repo, found, none = _script_files(ctx)
    if none:
        return none
    required = ctx.config.k6.required_thresholds
    # Options k6 computed by running the script may carry what it read: never quoted.
    quote = not ctx.config.run_repo_code
    problems: list[Evidence] = []
    unreadable: list[Evidence] = []
    ok: list[Evidence] = []
    for script in found:
        where = repofiles.relative(repo, script)
        options, why = _read_options(ctx, repo, script)
        if options is None:
            unreadable.append(ev(where, why))
            continue
        gaps = threshold_problems(options, required, quote)
        problems += [ev(where, gap) for gap in gaps]
        if not gaps:
            ok.append(ev(where, thresholds_text(options, required, quote)))
    if problems:
        return failed(*problems, *unreadable)
    if unreadable:
        return Outcome(Status.ERROR, tuple(unreadable))
    return passed(*ok)


@probe("k6.ci")
def ci(ctx: ProbeContext, params: Params) -> Outcome:
    """A load test nobody runs generates no data: some CI file must invoke k6."""
    repo = ctx.require_repo()
    runs: list[Evidence] = []
    looked: list[str] = []
    for entry in ctx.config.layout.ci:
        root = repo / entry
        files = list(repofiles.walk(root)) if root.exists() else []
        looked.append(f"{entry} ({len(files)} files)" if root.is_dir() else
                      f"{entry} ({'present' if files else 'absent'})")
        for path in files:
            where = repofiles.relative(repo, path)
            text = repofiles.read_bytes(repo, path).decode("utf-8", "replace")
            runs += [
                Evidence(where, f"line {number}: {line}", location=f"{where}:{number}")
                for number, line in k6_invocations(text)
            ]
    if not runs:
        first = ctx.config.layout.ci[0] if ctx.config.layout.ci else "."
        return failed(ev(first, f"no CI file runs k6 (looked in {', '.join(looked)})"))
    return passed(*runs)
