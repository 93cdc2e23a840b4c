"""The one answer every entry point gives about an image: the ``Verdict``.

Pure data. Built by ``trustkit.enforce`` (the pipeline); rendered by the CLI, hooks, CI gate and
admission webhook, so the decision and its explanation are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: scan findings are imported where scans are read
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
class AttestationDetail:
    """The scan attestation a push made before policy ran (``push --scan``)."""

    scanner: str
    findings: int
    counts: dict[str, int]
    predicate_type: str
    signer: str  # the scanner key id
    tag: str  # where it was attached (``sha256-<hex>.att``)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanner": self.scanner,
            "findings": self.findings,
            "counts": dict(self.counts),
            "predicate_type": self.predicate_type,
            "signer": self.signer,
            "tag": self.tag,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttestationDetail:
        """Transitional: the untyped form callers built before details were typed."""
        return cls(
            scanner=str(data["scanner"]),
            findings=int(data["findings"]),
            counts=dict(data["counts"]),
            predicate_type=str(data.get("predicate_type", data.get("predicateType", ""))),
            signer=str(data["signer"]),
            tag=str(data["tag"]),
        )


@dataclass(frozen=True, slots=True)
class VerdictDetails:
    """What a flow adds to a verdict beyond the decision (typed; rendered snake_case)."""

    attestation: AttestationDetail | None = None

    def __bool__(self) -> bool:
        return self.attestation is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.attestation is not None:
            out["attestation"] = self.attestation.to_dict()
        return out

    # transitional mapping reads (``details.get("attestation")``, ``{**details}``) for callers
    # written against the untyped dict; new code reads the fields
    def keys(self) -> list[str]:
        return list(self.to_dict())

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    @classmethod
    def of(cls, value: VerdictDetails | Mapping[str, Any]) -> VerdictDetails:
        if isinstance(value, VerdictDetails):
            return value
        unknown = set(value) - {"attestation"}
        if unknown:
            raise TypeError(f"unknown verdict details: {', '.join(sorted(unknown))}")
        raw = value.get("attestation")
        return cls(attestation=AttestationDetail.from_dict(raw) if raw is not None else None)


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
    details: VerdictDetails = field(default_factory=VerdictDetails)
    #: what the trust lookup said (None when no lookup was made)
    evidence: TrustEvidence | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.details, VerdictDetails):  # transitional: an untyped dict
            object.__setattr__(self, "details", VerdictDetails.of(self.details))

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
            **({"details": self.details.to_dict()} if self.details else {}),
        }

    def summary(self) -> str:
        """One line for logs and hook answers."""
        head = f"{self.reference}: {self.action.name}"
        if self.reasons:
            head += " - " + "; ".join(r.message for r in self.reasons[:3])
            if len(self.reasons) > 3:
                head += f" (+{len(self.reasons) - 3} more)"
        return head
