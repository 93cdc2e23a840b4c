"""``cosign_signed``: the image's digest carries cosign signatures (written by cosign, skopeo or
trustkit's own push) by ``threshold`` of the pinned public keys, as ``cosign verify --key`` or
Kyverno's ``verifyImages.attestors[].entries[].keys`` would check them. Composable in
``any_of`` / ``all_of`` with ``require_signed`` and ``keyless_signed``.

    rules:
      cosign_signed: {keys: [keys/release.pub, env://RELEASE_PUB], threshold: 1}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from trustkit.errors import BadInputError
from trustkit.policy.rules.base import Check, Evidence, ParseContext, Rule, SignatureContext, Stage

if TYPE_CHECKING:
    from trustkit.sources.cosign_keys import CosignKey

MAX_KEYS = 64


@dataclass(frozen=True)
class CosignRequirement:
    keys: tuple[CosignKey, ...]
    threshold: int = 1


class CosignSigned(Rule):
    key = "cosign_signed"
    order = 13
    stage = Stage.SIGNATURE
    composable = True
    schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["keys"],
        "properties": {
            "keys": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_KEYS,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 1, "maxLength": 4096},
                "description": (
                    "Public keys, as cosign names them offline: a PEM file (relative to the "
                    "policy file), file://PATH or env://VARIABLE."
                ),
            },
            "threshold": {"type": "integer", "minimum": 1, "maximum": MAX_KEYS},
        },
        "description": (
            "The digest must carry cosign signatures (.sig tag or OCI referrers, by any tool) "
            "made by at least `threshold` (default 1) of these keys."
        ),
    }

    def parse(self, value: Any, at: ParseContext) -> CosignRequirement | None:
        from trustkit.sources.cosign_keys import load_cosign_key

        base = at.source.parent if at.source is not None else None
        keys: list[CosignKey] = []
        for i, text in enumerate(value["keys"]):
            try:
                keys.append(load_cosign_key(text, base=base))
            except BadInputError as exc:
                at.problem(("keys", i), f"{at.where('keys', i)}: {exc}")
        if len({k.keyid for k in keys}) != len(keys):
            at.problem(("keys",), "cosign_signed.keys names one key twice")
        threshold = int(value.get("threshold", 1))
        if threshold > len(value["keys"]):
            at.problem(
                ("threshold",),
                f"cosign_signed.threshold is {threshold} but only {len(value['keys'])} key(s) "
                "are named: it could never be met",
            )
        return CosignRequirement(tuple(keys), threshold) if keys else None

    def needs(self, config: CosignRequirement) -> frozenset[Evidence]:
        return frozenset({Evidence.SIGNATURES})

    def verify(self, config: CosignRequirement, ctx: SignatureContext) -> Check:
        from trustkit.sources.cosign_keys import CosignKeySource

        remedy = (
            f"sign it with a pinned key (cosign sign --key ..., or a trustkit push with content "
            f"trust and SERVIN_SIGNATURE_FORMATS including cosign), or change cosign_signed of "
            f"policy {ctx.policy}"
        )
        if ctx.signatures is None:
            message = f"{ctx.image}: no digest is known, so its cosign signatures were not read"
            return Check(False, message, message, remedy=remedy)
        evidence = CosignKeySource(config.keys).evidence(ctx.signatures, image=ctx.image)
        signed = evidence.keyids
        if evidence.verified and len(signed) >= config.threshold:
            names = ", ".join(evidence.signer_names)
            return Check(True, f"cosign-signed by {names} ({len(signed)} of {config.threshold})")
        if evidence.verified:
            message = (
                f"{ctx.image} is cosign-signed by {len(signed)} of the pinned keys; "
                f"{config.threshold} needed"
            )
        else:
            message = evidence.message or f"{ctx.image} has no cosign signature by a pinned key"
        return Check(False, message, message, remedy=remedy)


PLUGINS: tuple[Rule, ...] = (CosignSigned(),)
