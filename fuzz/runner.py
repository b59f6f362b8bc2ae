"""Cases, how one is run (in a worker process, through `studio.cli.main`), and what counts as clean."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import time
import traceback
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

MODEL_MISSING = "not downloaded"
"""The one failure a well-formed request may end in here: the catalogue model is not in the (empty) cache."""


@dataclass
class Step:
    """One command and the exit codes it may end with: code -> a fragment stderr must hold (None: any)."""

    argv: list[str]
    allowed: dict[int, str | None]
    json_output: bool = False


@dataclass
class Case:
    category: str
    name: str
    steps: list[Step]
    untouched: list[Path] = field(default_factory=list)
    """Folders that must hold no file afterwards (a refused run writes nothing)."""
    check: Callable[[], str | None] | None = None
    """An extra check in the worker after the steps (a library call); returns why it failed, or None.
    Cases travel to worker processes by pickling: a module-level function or a functools.partial of one."""


@dataclass
class Outcome:
    category: str
    name: str
    problem: str | None  # None: clean

    @property
    def clean(self) -> bool:
        return self.problem is None


def _harmful(char: str) -> bool:
    return char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def terminal_problem(text: str, stream: str) -> str | None:
    bad = sorted({f"U+{ord(c):04X}" for c in text if _harmful(c)})
    return f"{stream} holds {', '.join(bad[:5])}" if bad else None


def stderr_problem(err: str) -> str | None:
    lines = err.splitlines()
    if "Traceback" in err:
        return "a traceback on stderr"
    stray = [line for line in lines if not line.startswith("studio: ")]
    if stray:
        return f"library text on stderr: {stray[0][:120]!r}"
    if sum(line.startswith("studio: error: ") for line in lines) > 1:
        return "more than one error line"
    return None


def run_cli(argv: list[str]) -> tuple[int | str, str, str]:
    """`studio ARGV` in this process: exit code, stdout, stderr. An exception escaping main() is reported
    as the code "raised" with its traceback on stderr (the installed command would print the same)."""
    from studio.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | str = main(argv)
        except SystemExit as exc:  # --help, --version
            code = exc.code if isinstance(exc.code, int) else 0
        except BaseException:  # noqa: BLE001 - that is the finding
            code = "raised"
            err.write(traceback.format_exc())
    return code, out.getvalue(), err.getvalue()


def step_problem(step: Step, code: int | str, out: str, err: str) -> str | None:
    if code not in step.allowed:
        first = err.strip().splitlines()[-1][:160] if err.strip() else ""
        return f"exit {code} (allowed {sorted(step.allowed)}): {first}"
    fragment = step.allowed[code]
    if fragment is not None and fragment not in err:
        return f"exit {code} without {fragment!r}: {err.strip()[:160]}"
    problem = stderr_problem(err) or terminal_problem(err, "stderr")
    if problem:
        return problem
    if step.json_output and code == 0:
        try:
            json.loads(out)
        except ValueError:
            return "--json output is not JSON"
        return None
    return terminal_problem(out, "stdout")


def files_left(folders: Iterable[Path]) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if not p.is_dir()]


def execute(case: Case) -> Outcome:
    """Run a case's steps in order (a failed step ends it), then its folder and library checks."""
    for step in case.steps:
        code, out, err = run_cli(step.argv)
        problem = step_problem(step, code, out, err)
        if problem:
            return Outcome(case.category, case.name, f"`studio {' '.join(step.argv[:2])} …`: {problem}")
    left = files_left(case.untouched)
    if left:
        return Outcome(case.category, case.name, f"left {left[0].name} behind")
    if case.check is not None:
        try:
            problem = case.check()
        except BaseException as exc:  # noqa: BLE001 - that is the finding
            problem = f"raised {type(exc).__name__}: {str(exc)[:120]}"
        if problem:
            return Outcome(case.category, case.name, problem)
    return Outcome(case.category, case.name, None)


def _quiet_worker() -> None:
    """In a worker: what bypasses Python's sys.stdout/stderr (C libraries writing to the file descriptors)
    goes to /dev/null, so that the parent's report stays readable; what the CLI prints is captured by
    `run_cli` and checked."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def run_cases(cases: list[Case], *, workers: int, timeout: float, deadline: float) -> tuple[list[Outcome], int]:
    """Outcomes of the cases run before `deadline` (a monotonic time), and how many were not started.

    A case that runs past `timeout` seconds is a failure (a hang); the pool is then replaced so that one
    stuck worker does not stall the rest."""
    outcomes: list[Outcome] = []
    pending = list(cases)
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    while pending and time.monotonic() < deadline:
        with context.Pool(workers, initializer=_quiet_worker, maxtasksperchild=200) as pool:
            started = [(case, pool.apply_async(execute, (case,))) for case in pending]
            pending = []
            for n, (case, result) in enumerate(started):
                if time.monotonic() >= deadline:
                    pending = []
                    not_started = len(started) - n
                    pool.terminate()
                    return outcomes, not_started
                try:
                    outcomes.append(result.get(timeout=timeout))
                except multiprocessing.TimeoutError:
                    outcomes.append(Outcome(case.category, case.name, f"hung (over {timeout:g} s)"))
                    pending = [c for c, r in started[n + 1 :] if not r.ready()]
                    outcomes += [r.get() for c, r in started[n + 1 :] if r.ready()]
                    pool.terminate()
                    break
    return outcomes, len(pending)
