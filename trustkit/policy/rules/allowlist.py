"""``allowlist``: waive vulnerability ids for a reason, an owner and until an expiry,
optionally only for some images. An expired entry is a reason of its own wherever it no
longer waives a violating finding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar

from trustkit.errors import BadInputError, InvalidReferenceError
from trustkit.policy.findings import MESSAGE_IDS, FindingsView
from trustkit.policy.globs import ImageGlob
from trustkit.policy.rules.base import ParseContext, PolicyRun, Rule, Stage
from trustkit.policy.rules.denylist import VULNERABILITY_ID, Denylist
from trustkit.policy.scope import ScopeSubject


@dataclass(frozen=True)
class AllowlistEntry:
    vulnerability_id: str  # upper-cased for matching
    reason: str
    owner: str
    expires: datetime  # aware, UTC; the entry applies strictly before this instant
    expires_text: str  # as written, for messages
    images: tuple[ImageGlob, ...] = ()

    def applies_to(self, subject: ScopeSubject) -> bool:
        """Only when it covers every name the content is known by (a waiver fails closed)."""
        return subject.covered_by(self.images)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[AllowlistEntry, ...]
    by_id: dict[str, tuple[AllowlistEntry, ...]]


def parse_expiry(text: str) -> datetime:
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(0, 0), tzinfo=UTC)
    value = datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        raise BadInputError("a date-time needs a time zone (Z or +HH:MM)")
    return value.astimezone(UTC)


def compile_globs(values: list[str], at: ParseContext) -> tuple[ImageGlob, ...]:
    out: list[ImageGlob] = []
    for i, text in enumerate(values):
        try:
            out.append(ImageGlob.compile(text))
        except InvalidReferenceError as exc:
            at.problem((i,), f"{at.where(i)}: {exc}")
    return tuple(out)


class AllowlistRule(Rule):
    key = "allowlist"
    order = 43
    stage = Stage.FINDINGS
    schema: ClassVar[Mapping[str, Any]] = {
        "type": "array",
        "maxItems": 10000,
        "items": {"$ref": "#/$defs/allowlistEntry"},
    }
    defs: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "vulnerabilityId": VULNERABILITY_ID,
        "date": {
            "type": "string",
            "pattern": (
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt "
                "][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$"
            ),
        },
        "allowlistEntry": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "reason", "owner", "expires"],
            "properties": {
                "id": {"$ref": "#/$defs/vulnerabilityId"},
                "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
                "owner": {"type": "string", "minLength": 1, "maxLength": 256},
                "expires": {
                    "$ref": "#/$defs/date",
                    "description": (
                        "YYYY-MM-DD (the entry stops applying at 00:00 UTC that day) or an RFC "
                        "3339 date-time."
                    ),
                },
                "images": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 256,
                    "items": {"$ref": "#/$defs/imageGlob"},
                    "description": (
                        "Only for these images; default every image in the policy's scope."
                    ),
                },
            },
        },
    }

    def parse(self, value: Any, at: ParseContext) -> Allowlist | None:
        denylist: Denylist | None = at.parsed.get("denylist")
        denied = set(denylist.ids) if denylist else set()
        out: list[AllowlistEntry] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for i, raw in enumerate(value):
            vuln = str(raw["id"]).upper()
            images = compile_globs(raw.get("images", []), at.at(i, "images"))
            try:
                expires = parse_expiry(raw["expires"])
            except (BadInputError, ValueError, OverflowError) as exc:  # fromisoformat: ValueError
                at.problem((i, "expires"), f"{at.where(i, 'expires')}: {exc}")
                continue
            identity = (vuln, tuple(sorted(g.normalised for g in images)))
            if identity in seen:
                at.problem((i, "id"), f"allowlist entry for {vuln} appears twice")
            seen.add(identity)
            if vuln in denied:
                at.problem(
                    (i, "id"),
                    f"{vuln} is both allowlisted and denylisted; the denylist would always win",
                )
            out.append(
                AllowlistEntry(
                    vulnerability_id=vuln,
                    reason=raw["reason"],
                    owner=raw["owner"],
                    expires=expires,
                    expires_text=raw["expires"],
                    images=images,
                )
            )
        if not out:
            return None
        by_id: dict[str, list[AllowlistEntry]] = {}
        for entry in out:
            by_id.setdefault(entry.vulnerability_id, []).append(entry)
        return Allowlist(tuple(out), {k: tuple(v) for k, v in by_id.items()})

    def globs(self, config: Allowlist) -> tuple[ImageGlob, ...]:
        return tuple(g for e in config.entries for g in e.images)

    def prepare(self, config: Allowlist, view: FindingsView, subject: ScopeSubject) -> None:
        index, now = view.index, view.now
        by_id = index.by_id
        for vid, entries in config.by_id.items():
            if len(entries) == 1:  # the common case, kept cheap: one entry per id
                entry = entries[0]
                if entry.images and not entry.applies_to(subject):
                    continue
                hits = by_id.get(vid)
                if now >= entry.expires:
                    view.expired_entries.append(entry)
                    for i in hits or ():
                        view.expired_for.setdefault(i, entry)
                elif hits:
                    view.waived.update(hits)
                continue
            applicable = [e for e in entries if e.applies_to(subject)]
            active = [e for e in applicable if not e.expired(now)]
            if applicable and not active:
                view.expired_entries.append(applicable[0])
            hits = index.by_id.get(vid)
            if not hits or not applicable:
                continue
            if active:
                view.waived.update(hits)
            else:
                for i in hits:
                    view.expired_for.setdefault(i, applicable[0])

    def check(
        self, config: Allowlist, view: FindingsView, run: PolicyRun, subject: ScopeSubject
    ) -> None:
        lapsed: dict[str, AllowlistEntry] = {}
        if view.threshold is not None:
            for i, entry in view.expired_for.items():
                if i not in view.waived and view.index.violates(
                    i, view.threshold, fixable_only=view.fixable_only
                ):
                    lapsed[entry.vulnerability_id] = entry
        for vid in sorted(lapsed):
            entry = lapsed[vid]
            run.failed(
                self.key,
                f"allowlist entry for {vid} expired on {entry.expires_text} "
                f"(owner {entry.owner}: {entry.reason})",
                findings=(vid,),
                remedy=f"fix {vid}, or renew its allowlist entry in policy {run.policy.name}",
            )
        if not lapsed:
            detail = f"{len(view.waived)} finding(s) waived by {len(config.entries)} entries"
            if view.expired_entries:
                detail += "; expired: " + ", ".join(
                    f"{e.vulnerability_id} on {e.expires_text}"
                    for e in view.expired_entries[:MESSAGE_IDS]
                )
            run.passed(self.key, detail)


PLUGINS: tuple[Rule, ...] = (AllowlistRule(),)
