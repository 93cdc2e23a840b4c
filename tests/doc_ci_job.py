"""Runs the shell steps of a CI job documented in docs/ci.md, here, for tests/test_docs_examples.py.

``run-ci-job github|gitlab FILE``: the job's variables and its runner's expressions
(``${{ github.sha }}``, ``$CI_PROJECT_DIR``, secrets) are filled in, ``registry.example.com`` is
the sandbox registry (``$REGISTRY``, images under ``ci-github/`` or ``ci-gitlab/``), and the steps
that install trustkit or upload a report (``pip``, ``apt-get``, ``uses:``) are left out: every
``trustkit`` command the job runs, runs, in order, and the first that fails stops the job.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import yaml

SKIPPED = re.compile(r"\s*(pip|apt-get) ")  # installing: trustkit is already here


def main(kind: str, path: str) -> int:
    here, registry = os.getcwd(), os.environ["REGISTRY"]
    values = {
        "github.sha": "1.4.2",
        "github.workspace": here,
        "runner.temp": f"{here}/runner",
        "secrets.REGISTRY_USER": "ci",
        "secrets.REGISTRY_PASSWORD": "test-password",  # the test registry accepts any password
        "CI_COMMIT_SHA": "1.4.2",
        "CI_PROJECT_DIR": here,
        "REGISTRY_USER": "ci",
        "REGISTRY_PASSWORD": "test-password",
    }

    def fill(text: Any) -> str:
        filled = re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m[1]], str(text))
        filled = re.sub(r"\$(CI_\w+)", lambda m: values[m[1]], filled)
        return filled.replace("registry.example.com/", f"{registry}/ci-{kind}/").replace(
            "registry.example.com", registry
        )

    with open(path, encoding="utf-8") as file:
        config = yaml.safe_load(file)
    if kind == "github":
        job = config["jobs"]["gate"]
        variables, steps = job["env"], [step["run"] for step in job["steps"] if "run" in step]
    else:
        job = config["trustkit-gate"]
        variables, steps = job["variables"], [*job["before_script"], *job["script"]]
    env = dict(os.environ)
    env.update({name: value for name, value in values.items() if "." not in name})
    env.update({name: fill(value) for name, value in variables.items()})
    for step in steps:
        if SKIPPED.match(step):
            continue
        print("+", fill(step).strip(), flush=True)
        if subprocess.run(["bash", "-e", "-c", fill(step)], env=env, check=False).returncode:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
