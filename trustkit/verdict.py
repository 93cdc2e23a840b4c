"""The one answer every entry point gives about an image: the ``Verdict``.

Pure data. Built by ``trustkit.enforce`` (the pipeline); rendered by the CLI, hooks, CI gate and
admission webhook, so the decision and its explanation are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from trustkit.model.evidence import TrustEvidence
from trustkit.model.findings import Finding


class Context(StrEnum):
    PUSH = "push"
    PULL = "pull"
    CI = "ci"
    ADMISSION = "admission"


class Action(IntEnum):
    """Ordered by strictness so that ``max()`` picks the strictest."""

    ALLOW = 0
    AUDIT = 1
    WARN = 2
    BLOCK = 3


def finding_dict(finding: Finding) -> dict[str, Any]:
    """The JSON form of a finding named in a Reason."""
    return {
        "id": finding.vulnerability_id,
        "package": finding.package_name,
        "installed_version": finding.installed_version,
        "severity": finding.severity.name,
        "fixed_versions": list(finding.fixed_versions),
        "title": finding.title,
        "target": finding.target,
    }


@dataclass(frozen=True, slots=True)
class Reason:
    """One line of explanation: which policy and rule, about what, and how to fix or waive it."""

    rule: str  # e.g. "severity", "require_signed", "trust"
    message: str
    action: Action = Action.BLOCK
    policy: str | None = None  # None for content-trust refusals outside any policy
    findings: tuple[str, ...] = ()  # vulnerability ids concerned
    remedy: str | None = None
    affected: tuple[Finding, ...] = ()  # the findings behind ``findings`` (SARIF, JUnit)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.policy,
            "rule": self.rule,
            "action": self.action.name,
            "message": self.message,
            "findings": list(self.findings),
            "remedy": self.remedy,
        }
        if self.affected:
            out["affected"] = [finding_dict(f) for f in self.affected]
        return out


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """One policy's result for one image (every matching policy is reported)."""

    policy: str
    action: Action  # what this policy decided: ALLOW when none of its rules fired
    reasons: tuple[Reason, ...] = ()
    rules: tuple[tuple[str, bool, str], ...] = ()  # (rule, passed, detail) for --explain


@dataclass(frozen=True, slots=True)
class Verdict:
    reference: str
    context: Context
    allowed: bool
    action: Action
    digest: str | None = None
    reasons: tuple[Reason, ...] = ()
    policies: tuple[PolicyOutcome, ...] = ()
    signers: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    #: what the trust lookup said (None when no lookup was made)
    evidence: TrustEvidence | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "context": self.context.value,
            "allow": self.allowed,
            "action": self.action.name,
            "digest": self.digest,
            "signers": list(self.signers),
            "reasons": [r.to_dict() for r in self.reasons],
            "policies": [
                {
                    "policy": p.policy,
                    "action": p.action.name,
                    "reasons": [r.to_dict() for r in p.reasons],
                    "rules": [
                        {"rule": rule, "passed": ok, "detail": detail}
                        for rule, ok, detail in p.rules
                    ],
                }
                for p in self.policies
            ],
            **({"trust": self.evidence.to_dict()} if self.evidence is not None else {}),
            **({"details": self.details} if self.details else {}),
        }

    def summary(self) -> str:
        """One line for logs and hook answers."""
        head = f"{self.reference}: {self.action.name}"
        if self.reasons:
            head += " - " + "; ".join(r.message for r in self.reasons[:3])
            if len(self.reasons) > 3:
                head += f" (+{len(self.reasons) - 3} more)"
        return head
