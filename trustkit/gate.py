"""The CI gate: the pipeline over a list of images, with CI-friendly results.

Exit codes: 0 all allowed, 1 at least one blocked, 2 bad input or usage, 3 environment error.
An image that cannot be checked (it does not exist: 2; the registry is unreachable: 3) does not
hide the verdicts of the others; it is reported, and the gate fails with its code unless an
image was blocked (a block is the stronger statement).
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
from trustkit.services import Services, as_services
from trustkit.verdict import Context, Verdict


@dataclass(frozen=True)
class GateResult:
    verdicts: tuple[Verdict, ...]
    errors: tuple[tuple[str, str], ...]  # (image, one-line error)
    error_codes: tuple[int, ...] = ()  # the exit code of each error, in the same order

    @property
    def exit_code(self) -> int:
        if any(not v.allowed for v in self.verdicts):
            return EXIT_REFUSED
        if self.errors:
            return min(self.error_codes, default=EXIT_ENVIRONMENT)  # bad input before environment
        return EXIT_OK


def run_gate(
    services: Services | Settings,
    images: Sequence[str],
    *,
    policy_files: Sequence[Path] = (),
    now: datetime | None = None,
) -> GateResult:
    from trustkit import refs
    from trustkit.pipeline.check import check_image
    from trustkit.policy import load_policies

    # one Services for every image: registry clients, tokens and the key store are shared
    services = as_services(services)
    settings = services.settings

    if not images:
        raise BadInputError("gate needs at least one image")
    for image in images:  # all references must parse before anything is fetched
        refs.parse(image)
    policies = load_policies(settings, extra_files=list(policy_files))
    verdicts: list[Verdict] = []
    errors: list[tuple[str, str]] = []
    codes: list[int] = []
    for image in images:
        try:
            verdicts.append(
                check_image(services, image, context=Context.CI, policies=policies, now=now)
            )
        except (TrustEnvironmentError, BadInputError) as exc:
            errors.append((image, exc.one_line()))
            codes.append(exc.exit_code)
    return GateResult(tuple(verdicts), tuple(errors), tuple(codes))
