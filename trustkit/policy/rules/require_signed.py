"""``require_signed``: the image must be vouched for by its trusted collection; optionally by
``threshold`` of the named ``signers``, each counted through a DIFFERENT key (one key added to
two signers' delegations counts once), and optionally only through pinned ``keys``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from trustkit.errors import FailureKind
from trustkit.model import SignerIdentity
from trustkit.policy.rules._keys import KEY_REFERENCE_SCHEMA, NamedKey, load_keys
from trustkit.policy.rules.base import Check, Evidence, ParseContext, Rule, SignatureContext, Stage


def signer_name(name: str) -> str:
    """Delegation ``targets/alice`` and signer ``alice`` are the same signer for policy."""
    return name[len("targets/") :] if name.startswith("targets/") else name


@dataclass(frozen=True)
class SignedRequirement:
    signers: tuple[str, ...] = ()  # normalised: without the "targets/" prefix
    threshold: int = 0  # how many must have signed (0: the collection's own trust suffices)
    keys: tuple[NamedKey, ...] = ()  # pinned: only signatures by these keys count

    @property
    def pinned(self) -> frozenset[str]:
        return frozenset(k.keyid for k in self.keys)


def _keys_of(signer: SignerIdentity, pinned: frozenset[str]) -> frozenset[str]:
    """The keys through which ``signer`` counts. A source that reports no key ids (legacy)
    lets the signer stand for one key of its own; pinned keys then never match it."""
    keys = frozenset(signer.keyids) or frozenset({f"signer:{signer_name(signer.name)}"})
    return keys & pinned if pinned else keys


def distinct_key_matching(candidates: dict[str, frozenset[str]]) -> dict[str, str]:
    """The largest assignment of signers to keys where no key serves two signers
    (bipartite matching by augmenting paths; at most 64 signers)."""
    owner: dict[str, str] = {}  # key -> signer

    def assign(signer: str, seen: set[str]) -> bool:
        for key in sorted(candidates[signer]):
            if key in seen:
                continue
            seen.add(key)
            if key not in owner or assign(owner[key], seen):
                owner[key] = signer
                return True
        return False

    for signer in candidates:
        assign(signer, set())
    return {signer: key for key, signer in owner.items()}


class RequireSigned(Rule):
    key = "require_signed"
    order = 10
    stage = Stage.SIGNATURE
    composable = True
    schema: ClassVar[Mapping[str, Any]] = {
        "oneOf": [
            {"type": "boolean"},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "signers": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 64,
                        "uniqueItems": True,
                        "items": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$",
                        },
                    },
                    "threshold": {"type": "integer", "minimum": 1, "maximum": 64},
                    "keys": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 64,
                        "uniqueItems": True,
                        "items": KEY_REFERENCE_SCHEMA,
                        "description": (
                            "Pinned signer keys: key ids (64 hex digits) or PEM public key files "
                            "(relative to the policy file); only their signatures count."
                        ),
                    },
                },
            },
        ],
        "description": (
            "The tag must be trusted by its collection; optionally by at least `threshold` of the "
            "named signers, each through a different key, and only through the pinned `keys`."
        ),
    }

    def parse(self, value: Any, at: ParseContext) -> SignedRequirement | None:
        if value is True:
            return SignedRequirement()
        if value is False or value is None:
            return None
        signers = tuple(signer_name(s) for s in value.get("signers", ()))
        keys = tuple(load_keys(list(value.get("keys", ())), at.at("keys"), "signer key"))
        threshold = value.get("threshold")
        counted = len(signers) if signers else len(value.get("keys", ()))
        if threshold is not None and not counted:
            at.problem(("threshold",), "require_signed.threshold needs a signers list")
            return SignedRequirement()
        if threshold is not None and threshold > counted:
            what = "signer(s) are named" if signers else "key(s) are pinned"
            at.problem(
                ("threshold",),
                f"require_signed.threshold is {threshold} but only {counted} {what}: "
                "it could never be met",
            )
        if len(set(signers)) != len(signers):
            at.problem(("signers",), "require_signed.signers names a signer twice")
        if len({k.keyid for k in keys}) != len(keys):
            at.problem(("keys",), "require_signed.keys names one key twice")
        return SignedRequirement(
            signers=signers, threshold=threshold or (1 if counted else 0), keys=keys
        )

    def needs(self, config: SignedRequirement) -> frozenset[Evidence]:
        return frozenset({Evidence.TRUST})

    def verify(self, config: SignedRequirement, ctx: SignatureContext) -> Check:
        trust, image = ctx.trust, ctx.image
        sign_remedy = f"sign the tag (trustkit trust sign {image}) or push it with content trust on"
        if not trust.checked:
            message = f"{image}: content trust was not checked, so the tag's signature is unknown"
            return Check(
                False,
                message,
                message,
                remedy="enable content trust (SERVIN_CONTENT_TRUST=1) for this check",
            )
        if not trust.verified:
            if trust.message is None:
                message = "the tag is not signed in its trusted collection"
            elif trust.failure is FailureKind.UNSIGNED:
                message = trust.message  # names the image and says it is not signed
            else:
                message = f"{image} is not signed: {trust.message}"
            return Check(False, message, message, remedy=sign_remedy)
        if config.signers:
            return self._named(config, ctx)
        if config.keys:
            return self._pinned(config, ctx)
        names = ", ".join(trust.signer_names) or "trusted collection"
        return Check(True, f"signed ({names})")

    def _named(self, config: SignedRequirement, ctx: SignatureContext) -> Check:
        wanted = ", ".join(config.signers)
        by_name: dict[str, frozenset[str]] = {}
        for signer in ctx.trust.signers:
            name = signer_name(signer.name)
            by_name[name] = by_name.get(name, frozenset()) | _keys_of(signer, config.pinned)
        present = [s for s in config.signers if by_name.get(s)]
        counted = distinct_key_matching({s: by_name[s] for s in present})
        credited = [s for s in present if s in counted]
        if len(credited) < config.threshold:
            if len(credited) < len(present):
                how = (
                    f"{ctx.image} is signed by {len(credited)} of the required signers through "
                    f"distinct{' pinned' if config.keys else ''} keys ({', '.join(present)} "
                    f"signed; a key counts once)"
                )
            else:
                how = (
                    f"{ctx.image} is signed by {len(present)} of the required signers "
                    f"({', '.join(present) or 'none'})"
                )
            return Check(
                False,
                f"{how}; {config.threshold} of [{wanted}] needed",
                f"{how}; {config.threshold} of [{wanted}] needed",
                remedy=(
                    f"have {config.threshold - len(credited)} more of [{wanted}] sign the "
                    f"tag with their own keys, or change require_signed of policy {ctx.policy}"
                ),
            )
        return Check(
            True,
            f"signed by {', '.join(credited)} ({len(credited)} of {config.threshold} needed)",
        )

    def _pinned(self, config: SignedRequirement, ctx: SignatureContext) -> Check:
        signed = frozenset(k for s in ctx.trust.signers for k in s.keyids) & config.pinned
        if len(signed) < config.threshold:
            message = (
                f"{ctx.image} is signed by {len(signed)} of the pinned keys; "
                f"{config.threshold} of {len(config.keys)} needed"
            )
            return Check(
                False,
                message,
                message,
                remedy=(
                    "sign the tag with a pinned key, or change require_signed.keys of policy "
                    f"{ctx.policy}"
                ),
            )
        return Check(True, f"signed by {len(signed)} pinned key(s) ({config.threshold} needed)")


PLUGINS: tuple[Rule, ...] = (RequireSigned(),)
