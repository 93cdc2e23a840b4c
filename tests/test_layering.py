"""The layering contracts (pyproject.toml, import-linter) hold, and they do catch a violation:
a copy of the package with one forbidden import (the way a hurried fix would add it) fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "trustkit", root / "trustkit", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the registry adapter must not learn about trust, even lazily inside a function
        (
            "registry/copy.py",
            "def _sneak() -> None:\n    from trustkit.collections import verify_tag\n",
            "the registry adapter knows nothing of trust",
        ),
        # policy is pure: it must not fetch from a registry
        (
            "policy/globs.py",
            "import trustkit.registry.client\n",
            "policy is pure",
        ),
        # a lower layer reaching up into the pipeline (an import cycle in the making)
        (
            "services.py",
            "def _sneak() -> None:\n    import trustkit.pipeline.flows\n",
            "entry points > pipeline",
        ),
        # an import cycle between two sibling modules
        (
            "pipeline/check.py",
            "def _sneak() -> None:\n    import trustkit.pipeline.flows\n",
            "no import cycles",
        ),
    ],
    ids=["registry-imports-collections", "policy-imports-registry", "services-up", "cycle"],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = _copy_tree(tmp_path)
    target = root / "trustkit" / module
    target.write_text(target.read_text() + "\n\n" + line)
    result = _lint(root)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
