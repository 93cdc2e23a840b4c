"""One model for every scanner's findings (Trivy, Grype, SARIF), plus VEX suppressions.

Parsers (``trustkit.attest.reports``) produce these; the policy evaluator consumes them. Frozen
dataclasses, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum


class Severity(IntEnum):
    """Ordered so that ``finding.severity >= Severity.HIGH`` reads as policies do."""

    UNKNOWN = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str | None) -> Severity:
        """Scanner spellings → Severity. Grype's Negligible is LOW; anything unknown is UNKNOWN."""
        if not text:
            return cls.UNKNOWN
        value = text.strip().upper()
        if value == "NEGLIGIBLE":
            return cls.LOW
        if value == "MODERATE":
            return cls.MEDIUM
        if value == "IMPORTANT":
            return cls.HIGH
        return cls.__members__.get(value, cls.UNKNOWN)


class FixState(StrEnum):
    FIXED = "fixed"  # a fixed version exists
    NOT_FIXED = "not_fixed"
    WONT_FIX = "wont_fix"
    UNKNOWN = "unknown"


class VexStatus(StrEnum):
    NOT_AFFECTED = "not_affected"
    FIXED = "fixed"
    AFFECTED = "affected"
    UNDER_INVESTIGATION = "under_investigation"


@dataclass(frozen=True, slots=True)
class Cvss:
    source: str  # e.g. "nvd", "redhat", "ghsa"
    version: str  # "2.0", "3.1", "4.0"
    score: float | None = None
    vector: str | None = None


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why a finding does not count: a VEX statement (kept and shown, never dropped)."""

    status: VexStatus
    justification: str | None = None
    statement: str | None = None  # impact/action statement from the VEX document
    source: str | None = None  # the VEX document it came from


@dataclass(frozen=True, slots=True)
class Finding:
    vulnerability_id: str
    package_name: str
    installed_version: str
    severity: Severity
    fix_state: FixState = FixState.UNKNOWN
    fixed_versions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    cvss: tuple[Cvss, ...] = ()
    purl: str | None = None
    title: str | None = None
    target: str | None = None  # layer/file/OS the package lives in, when the scanner says
    suppression: Suppression | None = None

    @property
    def fixable(self) -> bool:
        return self.fix_state is FixState.FIXED or bool(self.fixed_versions)

    @property
    def suppressed(self) -> bool:
        return self.suppression is not None and self.suppression.status in (
            VexStatus.NOT_AFFECTED,
            VexStatus.FIXED,
        )

    @property
    def ids(self) -> tuple[str, ...]:
        """The id and every alias: what allowlists and VEX statements match against."""
        return (self.vulnerability_id, *self.aliases)


@dataclass(frozen=True, slots=True)
class ScannerInfo:
    name: str  # "trivy", "grype"
    version: str | None = None
    db_updated: datetime | None = None  # vulnerability database build time, when known


@dataclass(frozen=True, slots=True)
class ScanReport:
    """A parsed report: who scanned what, when, and what they found."""

    format: str  # "trivy", "grype", "sarif"
    scanner: ScannerInfo
    findings: tuple[Finding, ...]
    artifact: str | None = None  # image name the scanner reported on
    artifact_digest: str | None = None
    created: datetime | None = None  # when the scanner wrote the report
    #: every manifest digest the report says it is about (Trivy RepoDigests, Grype
    #: manifestDigest/repoDigests, SARIF repoDigests), and the image config digest it names
    named_digests: tuple[str, ...] = ()
    named_config: str | None = None
    #: the repositories the report names (from its repo digests and artifact name)
    named_repositories: tuple[str, ...] = ()

    def counts(self, *, include_suppressed: bool = False) -> dict[str, int]:
        """Findings per severity name, highest first, as scanners' summaries show them."""
        out = {s.name: 0 for s in sorted(Severity, reverse=True)}
        for f in self.findings:
            if include_suppressed or not f.suppressed:
                out[f.severity.name] += 1
        return out

    def fixable_counts(self) -> dict[str, int]:
        """Like ``counts()``, only the findings that have a fix (suppressed ones left out)."""
        out = {s.name: 0 for s in sorted(Severity, reverse=True)}
        for f in self.findings:
            if f.fixable and not f.suppressed:
                out[f.severity.name] += 1
        return out

    def suppressed_count(self) -> int:
        """Findings a VEX statement marks not_affected or fixed."""
        return sum(f.suppressed for f in self.findings)


@dataclass(frozen=True, slots=True)
class VerifiedScan:
    """A scan attestation whose signature verified against a trusted scanner key."""

    report: ScanReport
    image_digest: str
    scan_finished_on: datetime
    signer_keyid: str
    predicate_type: str
    attestation_digest: str | None = None  # where it lives in the registry
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def scanned_at(self) -> datetime | None:
        """How old the scan's knowledge is, by the scanner's own clock: the vulnerability
        database's build when the report has it (a scan knows nothing newer), else the report's
        creation time; None when the report carries neither (its age is unknown). Never the
        attestation's time: a ten-month-old report attested today is ten months old."""
        times = [t for t in (self.report.created, self.report.scanner.db_updated) if t is not None]
        return min(times) if times else None

    def strictness(self) -> tuple[int, ...]:
        """Counting findings per severity, highest first: between two scans of the same time
        the one reporting more severe findings wins (the stricter)."""
        return tuple(self.report.counts().values())
