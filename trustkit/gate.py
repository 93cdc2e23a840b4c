"""The CI gate: the pipeline over a list of images, with CI-friendly results.

Exit codes: 0 all allowed, 1 at least one blocked, 2 bad input or usage, 3 environment error.
An environment error on one image does not hide the verdicts of the others; it is reported and
the gate fails with 3 unless an image was blocked (a block is the stronger statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trustkit.config import Settings
from trustkit.errors import (
    EXIT_ENVIRONMENT,
    EXIT_OK,
    EXIT_REFUSED,
    BadInputError,
    TrustEnvironmentError,
)
from trustkit.verdict import Context, Verdict


@dataclass(frozen=True)
class GateResult:
    verdicts: tuple[Verdict, ...]
    errors: tuple[tuple[str, str], ...]  # (image, one-line error)

    @property
    def exit_code(self) -> int:
        if any(not v.allowed for v in self.verdicts):
            return EXIT_REFUSED
        if self.errors:
            return EXIT_ENVIRONMENT
        return EXIT_OK


def run_gate(
    settings: Settings,
    images: Sequence[str],
    *,
    policy_files: Sequence[Path] = (),
    now: datetime | None = None,
) -> GateResult:
    from trustkit import refs
    from trustkit.enforce import check_image
    from trustkit.policy import load_policies

    if not images:
        raise BadInputError("gate needs at least one image")
    for image in images:  # all references must parse before anything is fetched
        refs.parse(image)
    policies = load_policies(settings, extra_files=list(policy_files))
    verdicts: list[Verdict] = []
    errors: list[tuple[str, str]] = []
    for image in images:
        try:
            verdicts.append(
                check_image(settings, image, context=Context.CI, policies=policies, now=now)
            )
        except TrustEnvironmentError as exc:
            errors.append((image, exc.one_line()))
    return GateResult(tuple(verdicts), tuple(errors))
