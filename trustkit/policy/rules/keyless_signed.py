"""``keyless_signed``: a keyless Sigstore bundle attached to the digest shows that the named
identity (exact, or a regular expression over the whole identity) issued by ``issuer`` signed it,
logged in a transparency log of a trusted root. Roots are files: ``public`` (the public-good
instance's root the sigstore package ships), ``public-staging``, or a private instance's
``trusted_root.json`` (relative to the policy file). Never network.

Kyverno's ``keyless: {subject, subjectRegExp, issuer, roots}`` and policy-controller's
``keyless.identities[{subject, subjectRegExp, issuer}]`` map onto these fields.

    rules:
      keyless_signed:
        identity: https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main
        issuer: https://token.actions.githubusercontent.com
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from trustkit.errors import BadInputError
from trustkit.policy.rules.base import Check, Evidence, ParseContext, Rule, SignatureContext, Stage

if TYPE_CHECKING:
    from trustkit.sources.sigstore import KeylessIdentity, TrustedRootFile

_TEXT = {"type": "string", "minLength": 1, "maxLength": 1024}


@dataclass(frozen=True)
class KeylessRequirement:
    identity: KeylessIdentity
    roots: tuple[TrustedRootFile, ...]


class KeylessSigned(Rule):
    key = "keyless_signed"
    order = 14
    stage = Stage.SIGNATURE
    composable = True
    schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["issuer"],
        "oneOf": [{"required": ["identity"]}, {"required": ["identity_regex"]}],
        "properties": {
            "identity": {**_TEXT, "description": "The certificate identity (SAN), exactly."},
            "identity_regex": {
                **_TEXT,
                "description": "A regular expression the whole certificate identity must match.",
            },
            "issuer": {**_TEXT, "description": "The OIDC issuer, exactly."},
            "trusted_roots": {
                "type": "array",
                "minItems": 1,
                "maxItems": 8,
                "uniqueItems": True,
                "items": _TEXT,
                "description": (
                    "public (default), public-staging, or trusted_root.json files of private "
                    "Sigstore instances (relative to the policy file)."
                ),
            },
        },
        "description": (
            "A keyless Sigstore bundle must show this identity and issuer signed the digest, "
            "with a transparency-log inclusion proof, under one of the trusted roots."
        ),
    }

    def parse(self, value: Any, at: ParseContext) -> KeylessRequirement | None:
        from trustkit.sources.sigstore import KeylessIdentity, load_trusted_root

        try:
            identity = KeylessIdentity(
                issuer=value["issuer"],
                identity=value.get("identity"),
                identity_regex=value.get("identity_regex"),
            )
        except BadInputError as exc:
            at.problem(("identity_regex",), f"{at.where()}: {exc}")
            return None
        base = at.source.parent if at.source is not None else None
        roots = []
        for i, text in enumerate(value.get("trusted_roots", ["public"])):
            try:
                roots.append(load_trusted_root(text, base=base))
            except BadInputError as exc:
                at.problem(("trusted_roots", i), f"{at.where('trusted_roots', i)}: {exc}")
        return KeylessRequirement(identity, tuple(roots)) if roots else None

    def needs(self, config: KeylessRequirement) -> frozenset[Evidence]:
        return frozenset({Evidence.SIGNATURES})

    def verify(self, config: KeylessRequirement, ctx: SignatureContext) -> Check:
        from trustkit.sources.sigstore import KeylessSource

        remedy = (
            f"sign it keyless as {config.identity.describe()} (cosign sign --new-bundle-format), "
            f"or change keyless_signed of policy {ctx.policy}"
        )
        if ctx.signatures is None:
            message = f"{ctx.image}: no digest is known, so its keyless bundles were not read"
            return Check(False, message, message, remedy=remedy)
        source = KeylessSource(config.identity, config.roots)
        evidence = source.evidence(ctx.signatures, image=ctx.image)
        if evidence.verified:
            return Check(True, f"keyless-signed by {config.identity.describe()}")
        message = evidence.message or f"{ctx.image} has no keyless signature"
        return Check(False, message, message, remedy=remedy)


PLUGINS: tuple[Rule, ...] = (KeylessSigned(),)
