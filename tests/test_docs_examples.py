"""The examples in docs/*.md are run here, so the documentation cannot drift from the product.

Convention (see docs/index.md, "Tested examples"):

- ``<!-- doc-test -->`` (or ``<!-- doc-test: NAME -->``) on the line before a fenced block marks
  it as tested. Blocks of one page with the same NAME (default: the page's name) run in order in
  one sandbox, in one shell: files, variables and exports carry over to the next block.
- In a ``console`` block, ``$ `` starts a command (a line ending in ``\\`` continues it); the
  lines up to the next command are expected output. Each expected line must match a line of the
  command's output (stdout and stderr), in order; ``…`` or ``...`` stands for any text, runs of
  spaces match any run of spaces, and output lines not shown in the doc are allowed. A command
  must exit 0, unless it ends with ``# exit N``, or the next command is ``echo $?`` (whose
  output then shows the code).
- A ``bash``/``sh`` block runs as one script (``set -e``, in a subshell) and must exit 0; its
  output is not checked. A ``python`` block runs as one script of the sandbox's ``python3`` and
  must exit 0.
- ``<!-- doc-test: NAME file=PATH -->`` before a block of any language (a policy, a
  configuration file, a script) writes it verbatim to PATH in the sandbox's directory; a later
  command of the sandbox must name PATH (validate it, load it, run it).
- ``<!-- doc-test-setup: NAME`` … ``-->`` runs hidden set-up commands (bash) in that sandbox.
- ``<!-- not runnable: REASON -->`` before a block: an example that cannot run here, and why.
  Every command or file example is one of the three (``test_every_example_is_tested_or_marked``).

The sandbox: fresh ``HOME`` (so the trust dir is ``~/.servin/trust``), the test passphrases,
``trustkit`` on ``PATH`` running this checkout, ``$IMAGES`` an OCI layout with tags ``v1``,
``v2`` and ``evil`` (scripts/demo_images.py: deterministic digests), copies of ``examples/``,
``policies/`` and ``keys-example/`` in the working directory, ``python3`` the interpreter trustkit
runs in, and a real docker-registry:
``localhost:5000/…`` in an example means ``<registry>/<page>-<name>/…`` (one namespace per
sandbox), a bare ``localhost:5000`` the registry itself, also exported as ``$REGISTRY``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fixtures.base import REPO_PASS, ROOT_PASS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOC_HOST = "localhost:5000"
MARK = re.compile(
    r"^<!--\s*doc-test(?::\s*(?P<name>[a-z0-9][a-z0-9-]*))?"
    r"(?:\s+file=(?P<file>[A-Za-z0-9_.][A-Za-z0-9_./-]*))?\s*-->\s*$"
)
SETUP = re.compile(r"^<!--\s*doc-test-setup(?::\s*(?P<name>[a-z0-9][a-z0-9-]*))?\s*$")
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\s*$")
EXIT_MARK = re.compile(r"#\s*exit\s+(?P<code>\d+)\s*$")
SHELL_LANGS = {"bash", "sh", "shell"}
FILE_END = "__TRUSTKIT_DOC_FILE__"  # heredoc delimiter of a file example
PYTHON_END = "__TRUSTKIT_DOC_PYTHON__"  # heredoc delimiter of a python example
TIME_LIMIT = 180.0  # seconds from the start of all sandboxes; they run in parallel (registry-stored
# trust: every publish talks to the sandbox registry and holds its claim for `settle` seconds)


@dataclass
class Command:
    line: int  # 1-based line of the doc where the command starts
    text: str
    expected: list[str] = field(default_factory=list)
    exit_code: int | None = 0  # None: not checked (the next command is `echo $?`)
    script: bool = False  # a bash/sh block: runs in a subshell with `set -e`
    writes: str | None = None  # a file example: the path it is written to


@dataclass
class Sandbox:
    page: Path
    name: str
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        stem = self.page.stem.lower()  # README: repository names are lowercase
        return f"{stem}-{self.name}" if self.name != stem else self.name


def _console_commands(lines: list[str], first_line: int) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for offset, raw in enumerate(lines):
        line = raw.rstrip()
        if continuing:
            commands[-1].text += "\n" + line
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append(Command(line=first_line + offset, text=line[2:]))
            continuing = line.endswith("\\")
        elif commands and line:
            commands[-1].expected.append(line)
    for command in commands:
        found = EXIT_MARK.search(command.text)
        if found:
            command.exit_code = int(found["code"])
    for before, after in itertools.pairwise(commands):
        if after.text.strip() == "echo $?":
            before.exit_code = None
    return commands


def _file_command(page: Path, line: int, path: str, body: list[str]) -> Command:
    """A file example (``file=PATH``): written verbatim to PATH in the sandbox's directory."""
    assert ".." not in path.split("/"), f"{page.name}:{line}: file={path} leaves the sandbox"
    text = "\n".join(body)
    assert FILE_END not in text, f"{page.name}:{line}: the file holds {FILE_END}"
    return Command(
        line=line,
        text=f"mkdir -p \"$(dirname {path})\" && cat >{path} <<'{FILE_END}'\n{text}\n{FILE_END}",
        script=True,
        writes=path,
    )


def _python_command(page: Path, line: int, body: list[str]) -> Command:
    """A python example: run by the sandbox's python3 as one script that must exit 0."""
    text = "\n".join(body)
    assert PYTHON_END not in text, f"{page.name}:{line}: the example holds {PYTHON_END}"
    return Command(line=line, text=f"python3 - <<'{PYTHON_END}'\n{text}\n{PYTHON_END}")


def collect(page: Path) -> list[Sandbox]:
    """Every marked example of ``page``, grouped into sandboxes in document order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    sandboxes: dict[str, Sandbox] = {}
    i = 0
    while i < len(lines):
        mark, setup = MARK.match(lines[i]), SETUP.match(lines[i])
        if lines[i].startswith("<!-- doc-test") and not (mark or setup):
            raise AssertionError(f"{page.name}:{i + 1}: malformed mark {lines[i]!r}")
        if setup:
            name = setup["name"] or page.stem
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->")
            body = "\n".join(lines[i + 1 : end])
            box = sandboxes.setdefault(name, Sandbox(page, name))
            box.commands.append(Command(line=i + 2, text=body))
            i = end + 1
            continue
        if mark:
            name = mark["name"] or page.stem
            fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            assert fence, f"{page.name}:{i + 1}: doc-test mark not followed by a fenced block"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            body = lines[i + 2 : end]
            box = sandboxes.setdefault(name, Sandbox(page, name))
            if mark["file"]:
                box.commands.append(_file_command(page, i + 3, mark["file"], body))
            elif fence["lang"] == "console":
                box.commands.extend(_console_commands(body, i + 3))
            elif fence["lang"] in SHELL_LANGS:
                box.commands.append(Command(line=i + 3, text="\n".join(body), script=True))
            elif fence["lang"] == "python":
                box.commands.append(_python_command(page, i + 3, body))
            else:
                raise AssertionError(f"{page.name}:{i + 2}: cannot run a {fence['lang']!r} block")
            i = end + 1
            continue
        i += 1
    return list(sandboxes.values())


def all_sandboxes() -> list[Sandbox]:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return [box for page in pages for box in collect(page)]


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [p.strip() for p in re.split(r"…|\.\.\.", expected.strip())]
    return re.compile(".*".join(r"\s+".join(map(re.escape, p.split())) for p in parts))


def output_mismatch(expected: list[str], output: str) -> str | None:
    """None when every expected line matches an output line, in order; else the first miss."""
    actual = [line.strip() for line in output.splitlines()]
    position = 0
    for want in expected:
        pattern = _pattern(want)
        while position < len(actual) and not pattern.fullmatch(actual[position]):
            position += 1
        if position == len(actual):
            return want
        position += 1
    return None


def _localise(text: str, host: str, namespace: str) -> str:
    return text.replace(f"{DOC_HOST}/", f"{host}/{namespace}/").replace(DOC_HOST, host)


def _script(box: Sandbox, host: str, out_dir: Path) -> str:
    parts = ["set -uo pipefail"]
    for n, command in enumerate(box.commands):
        text = _localise(command.text, host, box.id)
        if command.script:
            text = f"(\nset -e\n{text}\n)"
        check = (
            "" if command.exit_code is None else f'[ "$__rc" -eq {command.exit_code} ] || exit 0\n'
        )
        parts.append(
            f"{{\n{text}\n}} >{out_dir}/{n}.out 2>&1 </dev/null\n"
            f"__rc=$?\necho $__rc >{out_dir}/{n}.rc\n{check}(exit $__rc)"
        )
    return "\n".join(parts) + "\n"


def _prepare(work: Path) -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from demo_images import build_image
    finally:
        sys.path.pop(0)
    home, cwd, images, shim = work / "home", work / "work", work / "images", work / "bin"
    for directory in (home, cwd, shim):
        directory.mkdir(parents=True)
    for tag in ("v1", "v2", "evil"):
        build_image(images, tag, f"app {tag}\n")
    for name in ("examples", "policies", "keys-example", "scripts"):
        shutil.copytree(ROOT / name, cwd / name)
    (shim / "trustkit").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m trustkit "$@"\n')
    (shim / "trustkit").chmod(0o755)
    # docs/ci.md's jobs run their trustkit steps here
    (shim / "run-ci-job").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "doc_ci_job.py"}" "$@"\n'
    )
    (shim / "run-ci-job").chmod(0o755)
    # the examples' python3 is the one trustkit is installed in (as on a reader's machine)
    (shim / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python3").chmod(0o755)
    return {
        "PATH": f"{shim}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "PWD": str(cwd),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
        "PYTHONPATH": str(ROOT),
        "IMAGES": str(images),
        "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE": ROOT_PASS,
        "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE": REPO_PASS,
        # the default store (each image's registry), with the claim settle time of loopback
        "SERVIN_CONTENT_TRUST_SERVER": "registry://?settle=0.05",
    }


SANDBOXES = all_sandboxes()

#: ``<!-- not runnable: REASON -->`` before a block: an example the suite cannot run (it needs a
#: cluster, writes system files...), with the reason written down
NOT_RUNNABLE = re.compile(r"^<!--\s*not runnable:\s*(?P<reason>\S.*?)\s*-->\s*$")
EXAMPLE_LANGS = {*SHELL_LANGS, "console", "yaml", "yml", "json", "python"}
#: the ratchet, at its floor: example blocks neither run nor marked not runnable. A new example
#: is tested or says why it cannot be
UNMARKED_EXAMPLES_AT_MOST = 0


def unmarked_examples() -> list[str]:
    """Every command or file example block that is neither tested nor marked not runnable."""
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        lines = page.read_text().splitlines()
        inside = False
        for n, line in enumerate(lines):
            line = line.lstrip()  # a block inside a list item is indented
            fence = FENCE.match(line) if line.startswith("```") else None
            if line.startswith("```") and inside:
                inside = False
                continue
            if fence is None:
                continue
            inside = True
            if fence["lang"] not in EXAMPLE_LANGS:
                continue
            before = lines[n - 1].strip() if n else ""
            if not (MARK.match(before) or NOT_RUNNABLE.match(before)):
                found.append(f"{page.relative_to(ROOT)}:{n + 1}: {fence['lang']}")
    return found


def test_every_example_is_tested_or_marked_not_runnable() -> None:
    unmarked = unmarked_examples()
    assert len(unmarked) <= UNMARKED_EXAMPLES_AT_MOST, (
        f"{len(unmarked)} example blocks are neither tested (<!-- doc-test -->) nor marked "
        "<!-- not runnable: REASON -->:\n" + "\n".join(unmarked)
    )


def test_convention_finds_the_main_flows() -> None:
    """The pages the project rule names keep tested examples (a dropped mark fails here)."""
    merged: dict[str, str] = {}
    for box in SANDBOXES:
        merged[box.page.stem] = (
            merged.get(box.page.stem, "") + "\n" + "\n".join(c.text for c in box.commands)
        )
    wanted = {
        "trust": [
            "trust signer add",
            "trust sign",
            "trust inspect",
            "trust verify",
            "trust revoke",
            "trust key rotate",
        ],
        "operations": ["trust renew", "trust key rotate"],
        "policy": ["policy create", "policy validate", "policy list", "policy show", "policy eval"],
        "hooks": ["hook pre-pull"],
        "cli": ["push", "pull", "gate", "scan attest", "login"],
    }
    for page, commands in wanted.items():
        for command in commands:
            assert f"trustkit {command}" in merged.get(page, ""), (page, command)


def test_every_file_example_is_read() -> None:
    """A file example (``file=PATH``) is checked by a later command of its sandbox that names it:
    written and never read, it would prove nothing."""
    unread = []
    for box in SANDBOXES:
        for n, command in enumerate(box.commands):
            later = [c.text for c in box.commands[n + 1 :] if c.writes is None]
            if command.writes and not any(command.writes in text for text in later):
                unread.append(f"{box.page.name}:{command.line}: {command.writes}")
    assert not unread, "file examples no later command reads:\n" + "\n".join(unread)


def test_output_matching() -> None:
    output = "Signatures for x/app   \n v1   337beec  alice\nother\n"
    assert output_mismatch(["Signatures for x/app", "v1 … alice"], output) is None
    assert output_mismatch(["v1 … alice", "Signatures for x/app"], output) is not None
    assert output_mismatch(["bob"], output) == "bob"


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    out_dir: Path
    host: str
    started: float


@pytest.fixture(scope="module")
def doc_runs(
    registry: object, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Run]:
    """Start every selected sandbox at once (they are independent): the page tests then only
    wait. Sandboxes whose test is deselected (``-k``) are not started."""
    host = str(getattr(registry, "host"))  # noqa: B009 - the fixture's type lives in fixtures
    selected = {
        item.callspec.params["box"].id
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("box"), Sandbox)
    }
    runs: dict[str, Run] = {}
    for box in SANDBOXES:
        if box.id not in selected:
            continue
        work = tmp_path_factory.mktemp(f"doc-{box.id}")
        env = _prepare(work / "sandbox")
        env["REGISTRY"] = host
        out_dir = work / "out"
        out_dir.mkdir()
        script = work / "example.sh"
        script.write_text(_script(box, host, out_dir))
        # a session of its own: whatever an example leaves running is stopped with it
        process = subprocess.Popen(
            ["bash", str(script)], cwd=env["PWD"], env=env, start_new_session=True
        )
        runs[box.id] = Run(process, out_dir, host, time.monotonic())
    return runs


def _problems(box: Sandbox, run: Run) -> list[str]:
    problems: list[str] = []
    for n, command in enumerate(box.commands):
        where = f"{box.page.name}:{command.line}: {command.text.splitlines()[0]}"
        rc_file = run.out_dir / f"{n}.rc"
        if not rc_file.exists():
            problems.append(f"{where}: not run (an earlier command failed)")
            break
        output = (run.out_dir / f"{n}.out").read_text(errors="replace")
        code = int(rc_file.read_text())
        if command.exit_code is not None and code != command.exit_code:
            problems.append(f"{where}: exit {code}, expected {command.exit_code}\n{output}")
            break
        expected = [_localise(e, run.host, box.id) for e in command.expected]
        missing = output_mismatch(expected, output)
        if missing is not None:
            problems.append(f"{where}: no output line matches {missing!r}\n{output}")
    return problems


def _stop_leftovers(session: int) -> None:
    """Stop what a sandbox left running (a server started with ``&`` by a failed example)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGTERM)


@pytest.mark.parametrize("box", SANDBOXES, ids=[f"{b.page.name}:{b.name}" for b in SANDBOXES])
def test_doc_examples(box: Sandbox, doc_runs: dict[str, Run]) -> None:
    run = doc_runs[box.id]
    try:
        run.process.wait(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait()
        pytest.fail(f"{box.id}: examples still running after {TIME_LIMIT:.0f} s")
    finally:
        _stop_leftovers(run.process.pid)
    problems = _problems(box, run)
    assert not problems, "\n\n".join(problems)
