"""A loaded, validated policy: frozen, with its rules (plugin, config) in evaluation order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit import refs
from trustkit.model.findings import Severity
from trustkit.policy.globs import ImageGlob
from trustkit.policy.rules import RULES, Evidence, Rule, Stage
from trustkit.policy.rules.allowlist import AllowlistEntry
from trustkit.policy.rules.max_scan_age import format_duration, parse_duration
from trustkit.policy.rules.require_signed import SignedRequirement, signer_name
from trustkit.policy.rules.trusted_scanners import TrustedScanner
from trustkit.policy.scope import ScopeSubject
from trustkit.verdict import Action, Context

if TYPE_CHECKING:
    from trustkit.keys._sslib import Key

API_VERSION = "trustkit.dev/v1"
KIND = "ImagePolicy"

__all__ = [
    "API_VERSION",
    "KIND",
    "AllowlistEntry",
    "Policy",
    "SignedRequirement",
    "TrustedScanner",
    "format_duration",
    "parse_duration",
    "signer_name",
]

_RULE_BY_KEY = {r.key: r for r in RULES}


@dataclass(frozen=True)
class _Plan:
    """A policy's rules grouped by stage, and the evidence they need (computed once)."""

    signature: tuple[tuple[Rule, Any], ...]
    scan_filters: tuple[tuple[Rule, Any], ...]
    presence: tuple[tuple[Rule, Any], ...]
    findings: tuple[tuple[Rule, Any], ...]
    needs: frozenset[Evidence]
    tag_scoped: bool
    short_named: bool


def _plan(
    rules: dict[str, Any], scope: tuple[ImageGlob, ...], exclude: tuple[ImageGlob, ...]
) -> _Plan:
    by_stage: dict[Stage, list[tuple[Rule, Any]]] = {s: [] for s in Stage}
    needs: set[Evidence] = set()
    globs = [*scope, *exclude]
    for rule in RULES:  # registry order is evaluation order
        if rule.key in rules:
            config = rules[rule.key]
            by_stage[rule.stage].append((rule, config))
            needs.update(rule.needs(config))
            globs.extend(rule.globs(config))
    return _Plan(
        signature=tuple(by_stage[Stage.SIGNATURE]),
        scan_filters=tuple(by_stage[Stage.SCAN_FILTER]),
        presence=tuple(by_stage[Stage.SCAN_PRESENCE]),
        findings=tuple(by_stage[Stage.FINDINGS]),
        needs=frozenset(needs),
        tag_scoped=any(g.tag_scoped for g in globs),
        short_named=any(g.short_path is not None for g in globs),
    )


@dataclass(frozen=True)
class Policy:
    name: str
    action: Action
    scope: tuple[ImageGlob, ...]
    exclude: tuple[ImageGlob, ...] = ()
    description: str | None = None
    contexts: frozenset[Context] | None = None  # None: every context
    #: rule key -> parsed config (rules that are off are absent)
    rules: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    plan: _Plan = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.rules) - set(_RULE_BY_KEY)
        if unknown:
            raise KeyError(f"unknown policy rule(s): {', '.join(sorted(unknown))}")
        object.__setattr__(self, "plan", _plan(self.rules, self.scope, self.exclude))

    def config(self, key: str) -> Any:
        """The parsed config of rule ``key``, None when the rule is off."""
        return self.rules.get(key)

    # --- what the pipeline asks ----------------------------------------------------------
    @property
    def needs(self) -> frozenset[Evidence]:
        return self.plan.needs

    @property
    def requires_signed(self) -> bool:
        """Whether any rule reads the trust evidence (so the pipeline must look it up)."""
        return Evidence.TRUST in self.plan.needs

    @property
    def needs_scans(self) -> bool:
        """Whether any rule looks at scan attestations (so the pipeline must fetch them)."""
        return Evidence.SCANS in self.plan.needs

    @property
    def tag_scoped(self) -> bool:
        """Whether a scope, an exclusion or a rule names images by tag."""
        return self.plan.tag_scoped

    @property
    def short_named(self) -> bool:
        """Whether a glob is a short name (its registries follow the registries config)."""
        return self.plan.short_named

    def applies_in(self, context: Context | str | None) -> bool:
        return self.contexts is None or context is None or Context(context) in self.contexts

    def applies_to(self, subject: ScopeSubject, *, context: Context | str | None = None) -> bool:
        """In scope by some name of the content, not excluded, and for this context."""
        return self.applies_in(context) and subject.in_scope(self.scope, self.exclude)

    def matches(
        self,
        ref: refs.ImageRef | str,
        digest: str | None = None,
        *,
        context: Context | str | None = None,
    ) -> bool:
        """``applies_to`` for a reference alone (no trust evidence: a digest's tags are unknown)."""
        image = refs.parse(ref) if isinstance(ref, str) else ref
        return self.applies_to(ScopeSubject.of(image, digest), context=context)

    def scanner_keys(self) -> list[Key]:
        """Public keys loaded from PEM files in ``trusted_scanners`` (key ids carry no key)."""
        return [s.key for s in self.trusted_scanners if s.key is not None]

    # --- the rules' configs, by their historical names -----------------------------------
    @property
    def severity(self) -> Severity | None:
        value: Severity | None = self.rules.get("severity")
        return value

    @property
    def ignore_unfixed(self) -> bool:
        return bool(self.rules.get("ignore_unfixed"))

    @property
    def allowlist(self) -> tuple[AllowlistEntry, ...]:
        config = self.rules.get("allowlist")
        return config.entries if config is not None else ()

    @property
    def denylist(self) -> tuple[str, ...]:
        config = self.rules.get("denylist")
        return config.ids if config is not None else ()

    @property
    def max_scan_age(self) -> timedelta | None:
        value: timedelta | None = self.rules.get("max_scan_age")
        return value

    @property
    def require_scan(self) -> bool:
        return bool(self.rules.get("require_scan"))

    @property
    def trusted_scanners(self) -> tuple[TrustedScanner, ...]:
        """The scanner keys the policy names (empty: the key store's scanner keys)."""
        config = self.rules.get("trusted_scanners")
        return config.scanners if config is not None else ()

    @property
    def trusted_keyids(self) -> frozenset[str]:
        config = self.rules.get("trusted_scanners")
        return config.keyids if config is not None else frozenset()

    @property
    def require_signed(self) -> SignedRequirement | None:
        value: SignedRequirement | None = self.rules.get("require_signed")
        return value

    def summary(self) -> dict[str, Any]:
        """A short description for ``policy list``."""
        return {
            "name": self.name,
            "action": self.action.name,
            "severity": self.severity.name if self.severity is not None else None,
            "scope": [g.text for g in self.scope],
            "exclude": [g.text for g in self.exclude],
            "require_signed": self.requires_signed,
            "require_scan": self.require_scan,
            "file": str(self.source) if self.source else None,
        }
