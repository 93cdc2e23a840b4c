"""Flows written once: push (gate → upload → sign → tag), pull (verdict → fetch that digest),
post-push. Every entry point composes these; the registry adapter only moves bytes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit import refs
from trustkit.config import Settings
from trustkit.pipeline.check import check_image, require_allowed, trust_once_signed
from trustkit.verdict import Context, Verdict

if TYPE_CHECKING:
    from trustkit.registry import Descriptor


def push_gate(
    settings: Settings,
    dest: str,
    *,
    policy_files: Sequence[Path] = (),
    scan: bool = False,
    report: Path | None = None,
    scanner_command: str | None = None,
    scanner_key: str | None = None,
    now: datetime | None = None,
    sign: bool = False,
) -> Callable[[Descriptor], Verdict]:
    """What the push path runs after the upload and before signing the tag.

    With ``scan`` the scan report (given, or produced by the scanner command) is attested to the
    pushed digest first; then policy decides about that digest. A BLOCK raises, so the tag is
    never signed; WARN and AUDIT come back in the Verdict for the caller to print. With ``sign``
    (the push signs the tag next) ``require_signed`` is judged against that signature.
    """

    def gate(descriptor: Descriptor) -> Verdict:
        pushed = refs.parse(dest).with_digest(descriptor.digest)
        granted = (
            trust_once_signed(settings, pushed, descriptor.digest, descriptor.size)
            if sign and pushed.tag is not None
            else None
        )
        attestation: dict[str, object] = {}
        if scan:
            from trustkit.attest.service import scan_and_attest

            attested = scan_and_attest(
                settings,
                str(pushed),
                report=report,
                scanner_command=scanner_command,
                key_name=scanner_key,
            )
            attestation = {
                "attestation": {
                    "scanner": attested.report.scanner.name,
                    "findings": len(attested.report.findings),
                    "counts": attested.report.counts(),
                    "predicateType": attested.predicate_type,
                    "signer": attested.signer_keyid,
                    "tag": attested.attached.att_tag,
                }
            }
        verdict = check_image(
            settings,
            str(pushed),
            context=Context.PUSH,
            policy_files=policy_files,
            now=now,
            require_trust=False,  # the tag is about to be signed: trust is what we grant here
            trust=granted,
        )
        if attestation:
            verdict = dataclasses.replace(verdict, details={**verdict.details, **attestation})
        return require_allowed(verdict)

    return gate
