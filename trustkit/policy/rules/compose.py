"""``any_of`` / ``all_of``: signature rules composed the way sigstore-python composes its
verification policies (``AnyOf``, ``AllOf``): each child is one composable rule (or another
composition); the verdict names the alternative that was met, or why each one failed.

    rules:
      any_of:
        - require_signed: {signers: [alice, bob], threshold: 2}
        - require_signed: {keys: [release.pub]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from trustkit.policy.rules.base import Check, Evidence, ParseContext, Rule, SignatureContext, Stage

MAX_ALTERNATIVES = 16


@dataclass(frozen=True)
class Composition:
    children: tuple[tuple[Rule, Any], ...]  # (rule, its config)


def _composable() -> dict[str, Rule]:
    from trustkit.policy.rules import RULES

    return {r.key: r for r in RULES if r.composable}


class _Compose(Rule):
    stage = Stage.SIGNATURE
    composable = True

    schema: ClassVar[Mapping[str, Any]] = {}

    def schema_fragment(self) -> Mapping[str, Any]:
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_ALTERNATIVES,
            "items": {"$ref": "#/$defs/signatureRule"},
            "description": self.describe,
        }

    describe = ""

    def schema_defs(self) -> Mapping[str, Mapping[str, Any]]:
        rules = _composable()
        return {
            "signatureRule": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {
                    k: ({"$ref": f"#/properties/rules/properties/{k}"}) for k in sorted(rules)
                },
                "description": "One composable rule: a mapping with exactly one rule key.",
            }
        }

    def parse(self, value: Any, at: ParseContext) -> Composition | None:
        rules = _composable()
        children: list[tuple[Rule, Any]] = []
        for i, item in enumerate(value):
            ((key, raw),) = item.items()  # the schema allows exactly one key
            config = rules[key].parse(raw, at.at(i, key))
            if config is not None:
                children.append((rules[key], config))
        return Composition(tuple(children)) if children else None

    def needs(self, config: Composition) -> frozenset[Evidence]:
        return frozenset(e for rule, c in config.children for e in rule.needs(c))

    def results(self, config: Composition, ctx: SignatureContext) -> list[tuple[str, Check]]:
        return [(rule.key, rule.verify(c, ctx)) for rule, c in config.children]


class AnyOf(_Compose):
    key = "any_of"
    order = 11
    describe = "Met when at least one of these signature rules is met."

    def verify(self, config: Composition, ctx: SignatureContext) -> Check:
        results = self.results(config, ctx)
        for i, (key, check) in enumerate(results, 1):
            if check.passed:
                return Check(True, f"alternative {i} ({key}) met: {check.detail}")
        why = "; ".join(f"({i}) {c.message or c.detail}" for i, (_, c) in enumerate(results, 1))
        message = f"none of {len(results)} alternatives is met: {why}"
        return Check(False, message, message, remedy=results[0][1].remedy if results else None)


class AllOf(_Compose):
    key = "all_of"
    order = 12
    describe = "Met when every one of these signature rules is met."

    def verify(self, config: Composition, ctx: SignatureContext) -> Check:
        results = self.results(config, ctx)
        failed = [(i, k, c) for i, (k, c) in enumerate(results, 1) if not c.passed]
        if not failed:
            return Check(True, "; ".join(f"{k}: {c.detail}" for k, c in results))
        why = "; ".join(f"({i}) {c.message or c.detail}" for i, _, c in failed)
        message = f"{len(failed)} of {len(results)} required rules not met: {why}"
        return Check(False, message, message, remedy=failed[0][2].remedy)


PLUGINS: tuple[Rule, ...] = (AnyOf(), AllOf())
