"""servin's push and pull hooks: a thin adapter from the hook protocol to the pipeline.

Protocol (documented in docs/hooks.md): one JSON request, one JSON answer.

request  ``{"operation": "pull"|"push", "reference": "<image ref>",
            "digest": "sha256:..."?, "size": N?, "mediaType": "..."?}``
answer   ``{"allow": bool, "digest": "sha256:..."|null, "action": "ALLOW|AUDIT|WARN|BLOCK",
            "reasons": [...], "verdict": {...}}``

Stages: ``pre-pull`` resolves the tag through verified trust data (servin then pulls by the
returned digest); ``post-pull`` checks that what servin fetched is that digest; ``pre-push``
evaluates policy for the digest about to be pushed; ``post-push`` evaluates policy and, with
content trust on, signs the tag (digest and size) into its collection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from trustkit import refs
from trustkit._json import load_json_object
from trustkit.config import Settings
from trustkit.errors import EXIT_INTERNAL, BadInputError, TrustkitError, internal_error_line
from trustkit.services import Services, as_services
from trustkit.verdict import Action, Context, Reason, Verdict

MAX_REQUEST_BYTES = 64 * 1024
STAGES = ("pre-pull", "post-pull", "pre-push", "post-push")
_OPERATION_OF_STAGE = {
    "pre-pull": "pull",
    "post-pull": "pull",
    "pre-push": "push",
    "post-push": "push",
}


@dataclass(frozen=True)
class HookRequest:
    operation: str
    reference: str
    digest: str | None = None
    size: int | None = None
    media_type: str | None = None

    @classmethod
    def from_json(cls, data: bytes | str) -> HookRequest:
        raw = data.encode() if isinstance(data, str) else data
        return cls.from_mapping(load_json_object(raw, what="hook request", limit=MAX_REQUEST_BYTES))

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> HookRequest:
        operation = obj.get("operation")
        if operation not in ("pull", "push"):
            raise BadInputError('hook request: "operation" must be "pull" or "push"')
        reference = obj.get("reference")
        if not isinstance(reference, str) or not reference:
            raise BadInputError('hook request: "reference" must be a non-empty string')
        digest = obj.get("digest")
        if digest is not None:
            if not isinstance(digest, str):
                raise BadInputError('hook request: "digest" must be a string')
            refs.validate_digest(digest)
        size = obj.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise BadInputError('hook request: "size" must be a non-negative integer')
        media_type = obj.get("mediaType")
        if media_type is not None and not isinstance(media_type, str):
            raise BadInputError('hook request: "mediaType" must be a string')
        refs.parse(reference)  # validate early: one clear message for a bad reference
        return cls(operation, reference, digest, size, media_type)


@dataclass(frozen=True)
class HookAnswer:
    allow: bool
    digest: str | None
    action: Action
    reasons: tuple[Reason, ...] = ()
    verdict: Verdict | None = None
    signed_roles: tuple[str, ...] = field(default=())
    #: post-push below a releases threshold: the pending change awaiting co-signers
    pending: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.allow else 1

    def to_dict(self) -> dict[str, Any]:
        # compact on purpose: servin logs this line; the full verdict (every finding) is what
        # `trustkit policy eval --output json` is for
        details = []
        for reason in self.reasons:
            item = reason.to_dict()
            item.pop("affected", None)
            details.append(item)
        out: dict[str, Any] = {
            "allow": self.allow,
            "digest": self.digest,
            "action": self.action.name,
            "reasons": [r.message for r in self.reasons],
            "details": details,
        }
        if self.signed_roles:
            out["signedRoles"] = list(self.signed_roles)
        if self.pending is not None:
            out["pending"] = self.pending
        verdict = self.verdict
        out["policies"] = (
            [{"policy": p.policy, "action": p.action.name} for p in verdict.policies]
            if verdict is not None
            else []
        )
        out["signers"] = list(verdict.signers) if verdict is not None else []
        return out


def _from_verdict(verdict: Verdict) -> HookAnswer:
    return HookAnswer(
        allow=verdict.allowed,
        digest=verdict.digest,
        action=verdict.action,
        reasons=verdict.reasons,
        verdict=verdict,
    )


def _refuse(message: str, rule: str, *, digest: str | None = None) -> HookAnswer:
    return HookAnswer(
        allow=False,
        digest=digest,
        action=Action.BLOCK,
        reasons=(Reason(rule=rule, message=message),),
    )


def _with_digest(reference: str, digest: str) -> str:
    """``reference`` pinned to ``digest`` (a tagless push is to ``latest``, as in Docker)."""
    ref = refs.parse(reference)
    if ref.digest is not None and ref.digest != digest:
        raise BadInputError(
            f"hook request: reference {reference} names digest {ref.digest}, not {digest}"
        )
    return str(ref.with_digest(digest))


def pre_pull(services: Services | Settings, request: HookRequest) -> HookAnswer:
    from trustkit.pipeline.check import check_image

    services = as_services(services)
    verdict = check_image(services, request.reference, context=Context.PULL)
    return _from_verdict(verdict)


def post_pull(services: Services | Settings, request: HookRequest) -> HookAnswer:
    """Check that the fetched manifest digest is the one the pre-pull answer pinned."""
    if request.digest is None:
        raise BadInputError('post-pull request needs the pulled "digest"')
    answer = pre_pull(services, request)
    verdict = answer.verdict
    if verdict is None or not verdict.allowed:
        return answer
    if verdict.digest is not None and verdict.digest != request.digest:
        return _refuse(
            f"pulled {request.digest} but {request.reference} is trusted at {verdict.digest}",
            "digest",
            digest=verdict.digest,
        )
    return answer


def pre_push(services: Services | Settings, request: HookRequest) -> HookAnswer:
    """Policy for the content about to be pushed. The tag is not signed yet: with content trust
    on, post-push will sign it, so ``require_signed`` is judged against that signature."""
    from trustkit.pipeline.flows import push_verdict

    services = as_services(services)
    if request.digest is None:
        # fail closed: without the digest there is nothing to evaluate policy for
        raise BadInputError(f'{request.operation} hook request needs the "digest" being pushed')
    pushed = refs.parse(_with_digest(request.reference, request.digest))
    verdict = push_verdict(services, pushed, request.size, sign=services.settings.content_trust)
    return _from_verdict(verdict)


def post_push(services: Services | Settings, request: HookRequest) -> HookAnswer:
    """Policy first, then sign the tag (``flows.post_push``): a BLOCKed image is never signed."""
    from trustkit.pipeline.flows import post_push as post_push_flow

    if request.digest is None or request.size is None:
        raise BadInputError('post-push request needs the pushed "digest" and "size"')
    _with_digest(request.reference, request.digest)  # a reference naming another digest: refuse
    verdict, outcome = post_push_flow(
        services,
        request.reference,
        digest=request.digest,
        size=request.size,
        media_type=request.media_type,
    )
    answer = _from_verdict(verdict)
    if outcome is None:
        return answer
    return replace(
        answer,
        digest=request.digest,
        signed_roles=tuple(outcome.roles) if outcome.pending is None else (),
        pending=outcome.pending.to_json() if outcome.pending is not None else None,
    )


HookFunction = Callable[[Services | Settings, HookRequest], HookAnswer]

HOOKS: dict[str, HookFunction] = {
    "pre-pull": pre_pull,
    "post-pull": post_pull,
    "pre-push": pre_push,
    "post-push": post_push,
}


def run_hook(services: Services | Settings, stage: str, request: HookRequest) -> HookAnswer:
    if stage not in HOOKS:
        raise BadInputError(f"unknown hook {stage!r}; expected one of {', '.join(STAGES)}")
    expected = _OPERATION_OF_STAGE[stage]
    if request.operation != expected:
        raise BadInputError(f"{stage} hook got operation {request.operation!r}, not {expected!r}")
    from trustkit.registry.shortnames import qualify_for

    services = as_services(services)
    # a short name means what the registries configuration says, as on the command line
    qualified = qualify_for(services.registries, request.reference)
    if qualified != request.reference:
        request = replace(request, reference=qualified)
    return HOOKS[stage](services, request)


def handle(services: Services | Settings, stage: str, payload: bytes) -> tuple[int, dict[str, Any]]:
    """Bytes in, (exit code, JSON answer) out: what the executable and the socket server share.

    Malformed requests answer exit 2 with ``{"error": ...}``; environment failures exit 3; a
    trust or policy refusal is exit 1 with ``allow: false``; a bug in trustkit exits 4 and still
    answers JSON (``allow: false``, one line asking for a report), so servin fails closed.
    """
    try:
        request = HookRequest.from_json(payload)
        answer = run_hook(services, stage, request)
    except TrustkitError as exc:
        allow_key: dict[str, Any] = {"allow": False, "error": exc.one_line()}
        return exc.exit_code, allow_key
    except Exception as exc:  # last resort: a bug must still refuse, in the protocol's shape
        return EXIT_INTERNAL, {"allow": False, "error": internal_error_line(exc)}
    return answer.exit_code, answer.to_dict()


def servin_hooks() -> dict[str, HookFunction]:
    """Entry point (group ``servin.hooks``): servin loads this to call the hooks in-process.

    Each hook takes ``Settings`` (as servin passes it) or a ``Services`` the caller keeps for
    the whole process, which reuses registry connections and the key store across calls.
    """
    return dict(HOOKS)
