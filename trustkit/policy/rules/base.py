"""The rule plugin interface: one module per rule, the evaluator only walks the stages.

A rule module defines one ``Rule`` subclass: the key it reads under ``rules:``, its JSON-schema
fragment (the published schema is assembled from them, see ``trustkit.policy.schema``), how to
parse its value, which evidence it needs (so the pipeline fetches only that) and its check. Rules
run in stages, in registry order within a stage:

1. ``SIGNATURE``: reads the typed trust evidence; such rules are *composable* (``any_of`` /
   ``all_of``, the way sigstore-python composes verification policies) and return a ``Check``;
2. ``SCAN_FILTER``: sets scans aside (untrusted key, too old) before any finding counts;
3. ``SCAN_PRESENCE``: decides what no usable scan means;
4. ``FINDINGS``: ``prepare`` lets modifiers (allowlist, ignore_unfixed) shape the findings view,
   then ``check`` records results.

Everything here is pure: no I/O happens during evaluation (key files are read while parsing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from trustkit.model import TrustEvidence
from trustkit.model.findings import Finding, VerifiedScan
from trustkit.policy.globs import ImageGlob
from trustkit.policy.yamlnodes import LocatedDocument, Path_
from trustkit.verdict import Action, PolicyOutcome, Reason

if TYPE_CHECKING:
    from trustkit.policy.findings import FindingsView
    from trustkit.policy.model import Policy
    from trustkit.policy.scope import ScopeSubject
    from trustkit.sources.model import SignatureMaterial


class Evidence(StrEnum):
    """What a rule reads, so the pipeline gathers only what the applicable rules need."""

    TRUST = "trust"  # the trust evidence (signatures) of the image
    SCANS = "scans"  # verified scan attestations of the image's digest
    #: cosign signatures and Sigstore bundles attached to the digest (verified by the rules)
    SIGNATURES = "signatures"


class Stage(IntEnum):
    SIGNATURE = 1
    SCAN_FILTER = 2
    SCAN_PRESENCE = 3
    FINDINGS = 4


_MAX_MESSAGE = 300

#: why a scan was set aside: the ``ScanSelection`` list it goes to
SetAside = Literal["untrusted", "stale", "other"]


def where(path: Path_) -> str:
    """``rules.allowlist[2].expires`` for a document path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the document"


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str

    def render(self, source: str) -> str:
        return f"{source}:{self.line}:{self.column}: {self.message}"


class ParseContext:
    """Where a rule's value sits in its policy file; collects problems with their positions."""

    def __init__(
        self,
        doc: LocatedDocument,
        source: Path | None,
        problems: list[Problem],
        parsed: dict[str, Any],
        base: Path_ = ("rules",),
    ) -> None:
        self.doc = doc
        self.source = source
        self.problems = problems
        #: configs of the rules parsed so far (registry order), for checks across rules
        self.parsed = parsed
        self.base = base

    @property
    def document(self) -> dict[str, Any]:
        data: dict[str, Any] = self.doc.data
        return data

    @property
    def action(self) -> Action:
        return Action[self.document["action"]]

    def at(self, *rel: str | int) -> ParseContext:
        return ParseContext(self.doc, self.source, self.problems, self.parsed, (*self.base, *rel))

    def path(self, *rel: str | int) -> Path_:
        return (*self.base, *rel)

    def where(self, *rel: str | int) -> str:
        return where(self.path(*rel))

    def problem(self, rel: Path_, message: str, *, key: bool = False) -> None:
        pos = self.doc.position((*self.base, *rel), key=key)
        self.problems.append(Problem(pos.line, pos.column, message[:_MAX_MESSAGE]))


@dataclass(frozen=True)
class Check:
    """A composable rule's answer: the explain line, and for a failure the reason and remedy."""

    passed: bool
    detail: str
    message: str | None = None  # failing: the reason (without the "policy NAME: " prefix)
    remedy: str | None = None


@dataclass(frozen=True)
class SignatureContext:
    """What signature rules see: the evidence and how to name the image in messages."""

    trust: TrustEvidence
    image: str
    policy: str
    #: signature artifacts attached to the digest, unverified (None: not read, no digest)
    signatures: SignatureMaterial | None = None


@dataclass
class ScanSelection:
    usable: tuple[VerifiedScan, ...]
    untrusted: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    unverified: tuple[str, ...] = ()
    #: None: a library caller verified the scans against keys it chose, and a policy without
    #: trusted_scanners counts them all; any set (the pipeline): such a policy trusts no key,
    #: the key store's scanner keys included (issue 14)
    store_keyids: frozenset[str] | None = None

    @property
    def set_aside(self) -> list[str]:
        return [*self.untrusted, *self.stale, *self.other]

    def put_aside(self, bucket: SetAside, why: str) -> None:
        {"untrusted": self.untrusted, "stale": self.stale, "other": self.other}[bucket].append(why)


class PolicyRun:
    """One policy against one image: collects rule results (for --explain) and reasons."""

    def __init__(self, policy: Policy, image: str) -> None:
        self.policy = policy
        self.image = image
        self.rules: list[tuple[str, bool, str]] = []
        self.reasons: list[Reason] = []

    def passed(self, rule: str, detail: str) -> None:
        self.rules.append((rule, True, detail))

    def noted_failure(self, rule: str, detail: str) -> None:
        """A failed explain line without a reason of its own (another rule gives the reason)."""
        self.rules.append((rule, False, detail))

    def failed(
        self,
        rule: str,
        message: str,
        *,
        remedy: str | None = None,
        findings: tuple[str, ...] = (),
        affected: tuple[Finding, ...] = (),
        detail: str | None = None,
    ) -> None:
        self.rules.append((rule, False, detail or message))
        self.reasons.append(
            Reason(
                rule=rule,
                message=f"policy {self.policy.name}: {message}",
                action=self.policy.action,
                policy=self.policy.name,
                findings=findings,
                remedy=remedy,
                affected=affected,
            )
        )

    def record(self, rule: str, check: Check) -> None:
        if check.passed:
            self.passed(rule, check.detail)
        else:
            self.failed(rule, check.message or check.detail, remedy=check.remedy)

    def outcome(self) -> PolicyOutcome:
        action = self.policy.action if self.reasons else Action.ALLOW
        return PolicyOutcome(
            policy=self.policy.name,
            action=action,
            reasons=tuple(self.reasons),
            rules=tuple(self.rules),
        )


class Rule:
    """Base of every rule plugin. Subclasses set the class attributes and override the hooks
    of their stage; the defaults do nothing. A rule module exposes its instances as
    ``PLUGINS``; ``trustkit.policy.rules`` finds every module that does."""

    key: ClassVar[str]
    stage: ClassVar[Stage]
    #: evaluation (and --explain) order among all rules; stages must not interleave
    order: ClassVar[int]
    #: JSON-schema fragment for ``rules.<key>`` and the ``$defs`` it refers to
    schema: ClassVar[Mapping[str, Any]]
    defs: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: may appear inside ``any_of`` / ``all_of`` (signature-stage rules returning a ``Check``)
    composable: ClassVar[bool] = False

    def schema_fragment(self) -> Mapping[str, Any]:
        return self.schema

    def schema_defs(self) -> Mapping[str, Mapping[str, Any]]:
        return self.defs

    def parse(self, value: Any, at: ParseContext) -> Any:
        """The config for ``value`` (schema-valid already), or None for 'rule off'."""
        raise NotImplementedError

    def default(self, at: ParseContext) -> Any:
        """The config when the key is absent (None: the rule is off)."""
        return None

    def needs(self, config: Any) -> frozenset[Evidence]:
        """Evidence this config needs fetched (modifiers of other rules need none of their own)."""
        return frozenset()

    def globs(self, config: Any) -> tuple[ImageGlob, ...]:
        """Image globs this config names (the pipeline learns tags and short-name registries
        when some glob depends on them)."""
        return ()

    # --- SIGNATURE -----------------------------------------------------------------------
    def verify(self, config: Any, ctx: SignatureContext) -> Check:
        raise NotImplementedError

    # --- SCAN_FILTER ---------------------------------------------------------------------
    def set_aside(
        self,
        config: Any,
        scan: VerifiedScan,
        age: timedelta,
        label: str,
        selection: ScanSelection,
    ) -> tuple[SetAside, str] | None:
        """``(bucket, why)`` to set ``scan`` aside, None to keep it."""
        return None

    def explain_selection(self, config: Any, selection: ScanSelection, run: PolicyRun) -> None:
        """Record this rule's explain line once scans are selected."""

    # --- SCAN_PRESENCE -------------------------------------------------------------------
    def presence(self, config: Any, selection: ScanSelection, run: PolicyRun) -> bool:
        """Record the result; True when the findings stage should run."""
        return bool(selection.usable)

    # --- FINDINGS ------------------------------------------------------------------------
    def prepare(self, config: Any, view: FindingsView, subject: ScopeSubject) -> None:
        """Shape the findings view before any findings rule checks (waivers, fixability)."""

    def check(self, config: Any, view: FindingsView, run: PolicyRun, subject: ScopeSubject) -> None:
        """Record this rule's result over the findings."""
