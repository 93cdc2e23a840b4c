"""Flows written once: push (gate → upload → sign → tag), pull (verdict → fetch that digest),
post-push. Every entry point composes these; the registry adapter only moves bytes.

The order "policy first, then sign" lives in ``sign_unless_blocked`` alone: ``push_image`` (the
CLI) and ``post_push`` (servin's hook) both go through it, so a BLOCKed image is never signed by
either.

Refuse before publishing (issue 15): ``push_image`` runs everything that can refuse a push
before the first blob is uploaded — the signing keys are unlocked and the thresholds of the roles
they sign checked, the scanner is run on the SOURCE (or the report read) and its statement signed
in memory, and policy is judged for the source's digest under the destination's name with that
signed scan as the evidence the registry will hold (``PushChecks.before_upload``). Without a scan,
content the registry does not hold has no scan: a policy requiring one refuses before the upload.
After the upload the judged attestation is attached and the tag is written last: the image is
pushed by digest, attested and signed, and only then tagged, so a refusal or a registry error
leaves no tag pointing at unsigned or refused content.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import (
    AuthenticationError,
    BadInputError,
    DigestMismatchError,
    NotFoundError,
    NotSignedError,
    PolicyRefusal,
    TagMovedError,
    UnknownRepositoryError,
    UnreachableError,
)
from trustkit.pipeline.check import (
    PlannedScans,
    check_image,
    require_allowed,
    trust_once_signed,
)
from trustkit.services import Services, as_services
from trustkit.verdict import AttestationDetail, Context, Verdict

if TYPE_CHECKING:
    from trustkit.attest.service import AttestResult, SignedScan
    from trustkit.collections import TrustedTarget
    from trustkit.collections.cosigning import PendingView
    from trustkit.collections.engine import SignOutcome
    from trustkit.keys import Key
    from trustkit.model.findings import VerifiedScan
    from trustkit.registry import Descriptor, ImageLocation, ManifestBlob, RegistryLocation
    from trustkit.sources.model import SimpleSigningLayer

_log = logging.getLogger(__name__)

#: runs after the upload and before signing (``PushChecks``: the judgement made before the
#: upload, with the scan attestation attached); raises (``PolicyRefusal``) to refuse
PushGate = Callable[["Descriptor"], Verdict]

_SIGN_HINT = (
    "sign it (trustkit push with SERVIN_CONTENT_TRUST=1, or trustkit trust sign), "
    "or pull with --disable-content-trust if you accept unsigned content"
)


@dataclass(frozen=True)
class PushResult:
    source: str
    destination: str
    descriptor: Descriptor
    signed_roles: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    #: the signature is a pending change awaiting co-signers (releases threshold)
    pending: PendingView | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "destination": self.destination,
            "digest": self.descriptor.digest,
            "size": self.descriptor.size,
            "mediaType": self.descriptor.media_type,
            "signed": bool(self.signed_roles),
            "roles": list(self.signed_roles),
        }
        if self.verdict is not None:
            out["verdict"] = self.verdict.to_dict()
        if self.pending is not None:
            out["signed"] = False
            out["pending"] = self.pending.to_json()
        return out


@dataclass(frozen=True)
class PullResult:
    ref: refs.ImageRef
    descriptor: Descriptor
    verified: bool
    #: the TrustedTarget from verify_tag when content trust resolved the tag
    trusted: TrustedTarget | None = None
    dest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": str(self.ref),
            "digest": self.descriptor.digest,
            "size": self.descriptor.size,
            "mediaType": self.descriptor.media_type,
            "verified": self.verified,
        }
        if self.trusted is not None:
            out["signers"] = list(self.trusted.signers)
            out["role"] = self.trusted.role
        if self.dest:
            out["dest"] = self.dest
        return out


# --- push -----------------------------------------------------------------------------------
def push_verdict(
    services: Services | Settings,
    pushed: refs.ImageRef,
    size: int | None,
    *,
    sign: bool,
    policy_files: Sequence[Path] = (),
    now: datetime | None = None,
    planned_scans: PlannedScans | None = None,
) -> Verdict:
    """Policy for a pushed digest (``pushed`` names it) before its tag is signed.

    Trust is what the push grants: with ``sign`` a ``require_signed`` policy is judged against
    the signature about to be made (the roles our keys sign into), never against the old tag.
    ``planned_scans``: judged before the upload, the scan attestation the push will attach
    counts, and content the registry does not hold yet has no scan there (not an error).
    """
    services = as_services(services)
    assert pushed.digest is not None
    granted = (
        trust_once_signed(services, pushed, pushed.digest, size)
        if sign and pushed.tag is not None
        else None
    )
    planned = None
    if sign and pushed.tag is not None and "cosign" in services.settings.signature_formats:

        def planned(digest: str) -> tuple[SimpleSigningLayer, ...]:
            from trustkit.sources.cosign import planned_layers

            return planned_layers(services, pushed, digest)

    return check_image(
        services,
        str(pushed),
        context=Context.PUSH,
        policy_files=policy_files,
        now=now,
        require_trust=False,  # the tag is about to be signed: trust is what we grant here
        trust=granted,
        planned_signatures=planned,  # and so are its cosign signatures
        planned_scans=planned_scans,
    )


def _refuse_unless_allowed(verdict: Verdict) -> Verdict:
    """``require_allowed``, with the BLOCK verdict kept on the refusal for JSON output."""
    try:
        return require_allowed(verdict)
    except PolicyRefusal as exc:
        exc.verdict = verdict
        raise


def _no_scan_planned(
    digest: str, keys: Sequence[Key]
) -> tuple[Sequence[VerifiedScan], Sequence[str]]:
    """A push without ``--scan`` attaches no scan: only the registry's own count."""
    return (), ()


class PushChecks:
    """Everything that can refuse a push, judged before the first blob is uploaded
    (``before_upload``: the scan of the SOURCE, signed in memory, and policy for the source's
    digest), then applied after the upload (the call): the scan attestation judged is attached,
    before the tag is signed and written.

    Callable as a ``PushGate``: a BLOCK raises ``PolicyRefusal`` (carrying the verdict)."""

    def __init__(
        self,
        services: Services,
        dest: str,
        *,
        policy_files: Sequence[Path],
        scan: bool,
        report: Path | None,
        scanner_command: str | None,
        scanner_key: str | None,
        now: datetime | None,
        sign: bool,
    ) -> None:
        self.services = services
        self.dest = dest
        self.policy_files = policy_files
        self.scan = scan
        self.report = report
        self.scanner_command = scanner_command
        self.scanner_key = scanner_key
        self.now = now
        self.sign = sign
        #: the verdict judged before the upload (with the scan signed below, if any)
        self._decided: Verdict | None = None
        #: the scan of the source, signed before the upload and attached after it
        self._signed_scan: SignedScan | None = None

    def before_upload(self, source: ImageLocation, top: ManifestBlob) -> None:
        """Refuse what can be refused before a byte is uploaded: no scanner key, no report or
        scanner (the scanner runs on the source), a report of another image, and policy for
        the source's digest — judged with the scan signed here, as the registry will hold it
        once attached, or without one (the registry's own scans, if it holds the content)."""
        pushed = refs.parse(self.dest).with_digest(top.digest)
        planned: PlannedScans = _no_scan_planned
        if self.scan:
            self._signed_scan = self._scan_source(source, top)
            planned = self._planned_scan
        verdict = push_verdict(
            self.services,
            pushed,
            top.descriptor.size,
            sign=self.sign,
            policy_files=self.policy_files,
            now=self.now,
            planned_scans=planned,
        )
        self._decided = _refuse_unless_allowed(verdict)

    def _planned_scan(
        self, digest: str, keys: Sequence[Key]
    ) -> tuple[Sequence[VerifiedScan], Sequence[str]]:
        """The signed scan as a verifier reading it from the registry would see it: verified
        against the keys the policies trust, for this digest."""
        from trustkit.attest.dsse import verify_attestation
        from trustkit.errors import TrustkitError

        signed = self._signed_scan
        assert signed is not None
        try:
            scan = verify_attestation(signed.envelope, trusted_keys=list(keys), image_digest=digest)
        except TrustkitError as exc:  # signed by a key no policy trusts
            return (), (f"the scan this push attaches: {exc.one_line()}",)
        if signed.warnings:
            scan.extras["warning"] = "; ".join(signed.warnings)
        return (scan,), ()

    def _scan_source(self, source: ImageLocation, top: ManifestBlob) -> SignedScan:
        """Scan the source (or read ``--report``) and sign the statement about its digest."""
        import json
        import shlex

        from trustkit._fs import read_bounded
        from trustkit.attest.reports import MAX_REPORT_BYTES, parse_report
        from trustkit.attest.service import run_scanner, scanner_signer, sign_scan

        signer = scanner_signer(self.services, self.scanner_key)  # no key: refuse before scanning
        started: datetime | None = None
        if self.report is not None:
            try:
                data = read_bounded(self.report, MAX_REPORT_BYTES, what="scan report")
            except FileNotFoundError:
                raise BadInputError(f"scan report {self.report} does not exist") from None
            report_source = self.report.name
        else:
            command = self.scanner_command or self.services.settings.scanner_command
            if not command:
                raise BadInputError(
                    "no scan report and no scanner command",
                    hint="pass --report FILE or set SERVIN_SCANNER (e.g. 'trivy image -f json')",
                )
            ref = source.ref
            target = (
                str(ref.with_digest(top.digest))
                if ref is not None
                else source.describe().removeprefix("oci:").split(":")[0].split("@")[0]
            )
            started = datetime.now(UTC).replace(microsecond=0)
            data = run_scanner(command, target)
            report_source = f"output of {shlex.split(command)[0]}"
        report = parse_report(data, source=report_source)
        return sign_scan(
            top,
            repository=refs.parse(self.dest).repository,
            check_repository=True,
            report=report,
            raw_report=json.loads(data),  # already validated by parse_report
            signer=signer,
            scan_started_on=started,
        )

    def __call__(self, descriptor: Descriptor) -> Verdict:
        pushed = refs.parse(self.dest).with_digest(descriptor.digest)
        decided = self._decided
        if decided is not None and decided.digest in (None, descriptor.digest):
            if self._signed_scan is None:
                return decided
            # the content is up now: attach the very attestation policy judged
            return _with_attestation(decided, self._attach_signed(pushed))
        attestation: AttestationDetail | None = None
        if self.scan:  # called without before_upload (an older caller): attest, then judge
            attestation = self._attest(pushed)
        verdict = push_verdict(
            self.services,
            pushed,
            descriptor.size,
            sign=self.sign,
            policy_files=self.policy_files,
            now=self.now,
        )
        if attestation is not None:
            verdict = _with_attestation(verdict, attestation)
        return _refuse_unless_allowed(verdict)

    def _attach_signed(self, pushed: refs.ImageRef) -> AttestationDetail:
        from trustkit.attest.service import attach_signed_scan
        from trustkit.registry import open_image_location

        assert self._signed_scan is not None
        location = open_image_location(self.services.registries, str(pushed))
        try:
            return _attestation_detail(attach_signed_scan(location, self._signed_scan))
        finally:
            location.close()

    def _attest(self, pushed: refs.ImageRef) -> AttestationDetail:
        from trustkit.attest.service import scan_and_attest

        attested = scan_and_attest(
            self.services,
            str(pushed),
            report=self.report,
            scanner_command=self.scanner_command,
            key_name=self.scanner_key,
        )
        return _attestation_detail(attested)


def _attestation_detail(attested: AttestResult) -> AttestationDetail:
    return AttestationDetail(
        scanner=attested.report.scanner.name,
        findings=len(attested.report.findings),
        counts=attested.report.counts(),
        predicate_type=attested.predicate_type,
        signer=attested.signer_keyid,
        tag=attested.attached.att_tag,
    )


def _with_attestation(verdict: Verdict, attestation: AttestationDetail) -> Verdict:
    details = dataclasses.replace(verdict.details, attestation=attestation)
    return dataclasses.replace(verdict, details=details)


def push_gate(
    services: Services | Settings,
    dest: str,
    *,
    policy_files: Sequence[Path] = (),
    scan: bool = False,
    report: Path | None = None,
    scanner_command: str | None = None,
    scanner_key: str | None = None,
    now: datetime | None = None,
    sign: bool = False,
) -> PushChecks:
    """What the push path runs: ``before_upload`` (``push_image`` calls it before the first
    blob), then the gate itself after the upload and before the tag is signed and written.

    With ``scan`` the scan report (given, or produced by the scanner command on the source)
    is signed as a statement about the source's digest before the upload, and policy decides
    with it then; after the upload that attestation is attached to the pushed digest. A BLOCK
    raises before anything is uploaded, so the tag is never signed nor written; WARN and AUDIT
    come back in the Verdict for the caller to print. With ``sign`` (the push signs the tag next)
    ``require_signed`` is judged against that signature.
    """
    return PushChecks(
        as_services(services),
        dest,
        policy_files=policy_files,
        scan=scan,
        report=report,
        scanner_command=scanner_command,
        scanner_key=scanner_key,
        now=now,
        sign=sign,
    )


def check_can_sign(services: Services, ref: refs.ImageRef) -> None:
    """Refuse a signed push before its upload when the tag could not be signed: no key of the
    collection here, a key that does not unlock, or a top-level role's threshold above the
    keys held (delegated roles below their threshold become pending changes instead)."""
    from trustkit.collections.engine import _on_notary, signable_roles
    from trustkit.collections.repository import Collection, local_keyids
    from trustkit.errors import BelowThresholdError

    if _on_notary(services, ref.gun):
        return  # Notary's writer checks its own keys when it signs
    collection = Collection.load(services.store, ref.gun)
    if collection is None:
        return  # the first push creates the collection and its keys
    keys = services.keys
    roles = signable_roles(collection, keys, ref.tag)  # raises when no key could sign
    top_level = {"root", "targets", "snapshot", "timestamp"}
    for role in [*roles, "snapshot", "timestamp"]:
        held = local_keyids(keys, collection.keyids_of(role))
        if role in top_level and role not in roles and not held:
            continue  # snapshot/timestamp signed elsewhere (an online key or the server)
        threshold = collection.threshold_of(role)
        if role in top_level and len(held) < threshold:
            raise BelowThresholdError(
                f"cannot sign {ref.gun}:{ref.tag}: role {role} needs {threshold} signatures "
                f"and this key store holds {len(held)} of its keys",
                hint="load the missing keys, or push with --disable-content-trust",
            )
        for keyid in held[:threshold]:
            keys.signer(keyid)  # unlocks now (a wrong or missing passphrase refuses here)


def sign_unless_blocked(
    services: Services,
    ref: refs.ImageRef,
    descriptor: Descriptor,
    *,
    sign: bool,
    gate: PushGate | None,
) -> tuple[Verdict | None, SignOutcome | None]:
    """Check policy, then sign: the one place that order is written.

    ``gate`` decides about the pushed digest (it may raise to refuse, as ``push_gate`` does);
    a BLOCK verdict is returned unsigned. With ``sign`` and a tag, the tag is signed for the
    digest, or, below a releases threshold, proposed as a pending change for co-signers.
    """
    verdict = gate(descriptor) if gate is not None else None
    if verdict is not None and not verdict.allowed:
        return verdict, None
    if not sign or ref.tag is None:
        return verdict, None
    from trustkit.collections import sign_or_propose

    outcome = sign_or_propose(
        services, ref.with_tag(ref.tag), digest=descriptor.digest, size=descriptor.size
    )
    if outcome.published and "cosign" in services.settings.signature_formats:
        write_cosign_signatures(services, ref.with_tag(ref.tag), descriptor)
    return verdict, outcome


def write_cosign_signatures(
    services: Services, ref: refs.ImageRef, descriptor: Descriptor
) -> list[str]:
    """After the tag is signed in its collection: the same keys sign it the way cosign and
    skopeo verify (``trustkit.sources.cosign``); returns one notice per key that cannot."""
    from trustkit.sources.cosign import sign_pushed, signing_keyids

    written = sign_pushed(services, ref, descriptor, signing_keyids(services, ref))
    for notice in written.notices:
        _log.warning("%s", notice)
    return written.notices


def push_image(
    services: Services | Settings,
    src: str | ImageLocation,
    dest: str,
    *,
    sign: bool,
    gate: PushGate | None = None,
) -> PushResult:
    """Copy ``src`` to ``dest``; with ``sign`` also sign ``dest``'s tag for the pushed digest.

    With ``sign`` the keys are unlocked first, and ``gate.before_upload`` (from ``push_gate``:
    the scan of the source and policy) runs before the first blob and raises to refuse, so a
    blocked image is neither uploaded nor signed; ``gate`` itself runs after the upload and
    before signing (it attaches the judged scan attestation). With a gate or ``sign`` the image
    is pushed by digest and tagged last.
    """
    from trustkit.registry import copy_image, open_image_location

    services = as_services(services)
    dest_ref: refs.ImageRef | None = None
    if not dest.startswith("oci:"):
        dest_ref = refs.parse(dest)
    if sign:
        if dest_ref is None:
            raise BadInputError(
                f"content trust signs registry tags, and {dest} is an OCI layout",
                hint="push to a registry reference, or pass --disable-content-trust",
            )
        if dest_ref.tag is None or dest_ref.digest is not None:
            raise BadInputError(
                f"content trust needs a tag to sign: {dest}",
                hint="push to IMAGE:TAG, or pass --disable-content-trust",
            )
    if sign and dest_ref is not None:
        check_can_sign(services, dest_ref)  # before the upload: a locked key refuses here
    # a location (the local image store's image) is the caller's, opened for this push
    source = open_image_location(services.registries, src) if isinstance(src, str) else src
    target = open_image_location(services.registries, dest)
    try:
        top = source.get_manifest(source.reference)
        if isinstance(gate, PushChecks):
            gate.before_upload(source, top)
        # tag last: while anything can still refuse (policy, signing), only the digest is pushed
        tag_last = dest_ref is not None and dest_ref.tag is not None and (sign or gate is not None)
        descriptor = copy_image(
            source,
            target,
            expected_digest=top.digest,
            dest_reference=top.digest if tag_last else None,
        )
        if dest_ref is None:
            verdict = gate(descriptor) if gate is not None else None
            return PushResult(source.describe(), target.describe(), descriptor, [], verdict)
        verdict, outcome = sign_unless_blocked(services, dest_ref, descriptor, sign=sign, gate=gate)
        if tag_last and (verdict is None or verdict.allowed):
            assert dest_ref.tag is not None
            target.put_manifest(dest_ref.tag, top.data, top.media_type, top_level=True)
    finally:
        source.close()
        target.close()
    roles = list(outcome.roles) if outcome is not None else []
    pending = outcome.pending if outcome is not None else None
    return PushResult(source.describe(), target.describe(), descriptor, roles, verdict, pending)


def post_push(
    services: Services | Settings,
    reference: str,
    *,
    digest: str,
    size: int,
    media_type: str | None = None,
) -> tuple[Verdict, SignOutcome | None]:
    """servin's post-push: policy for what servin uploaded, then (content trust on) sign its
    tag. A BLOCK comes back as the verdict, unsigned; a push by digest has no tag to sign."""
    services = as_services(services)
    pushed = refs.parse(reference).with_digest(digest)
    sign = services.settings.content_trust

    def gate(descriptor: Descriptor) -> Verdict:
        return push_verdict(services, pushed, descriptor.size, sign=sign)

    from trustkit.registry.model import Descriptor as PushedDescriptor

    pushed_descriptor = PushedDescriptor(media_type or "", digest, size)
    verdict, outcome = sign_unless_blocked(
        services, refs.parse(reference), pushed_descriptor, sign=sign, gate=gate
    )
    assert verdict is not None
    return verdict, outcome


# --- pull -----------------------------------------------------------------------------------
def _verified_target(services: Services, image: refs.ImageRef) -> TrustedTarget:
    # the verdict's check of this tag has just refreshed (or warm-checked) the client cache:
    # the warm path answers from it when the store still serves that state (ADR 0017)
    from trustkit.collections.warm import verify_tag

    try:
        return verify_tag(services, image)
    except UnknownRepositoryError as exc:
        raise NotSignedError(f"{image.familiar} is not signed: {exc}", hint=_SIGN_HINT) from exc
    except NotSignedError as exc:
        if exc.hint is None:
            exc.hint = _SIGN_HINT
        raise


def _check_tag_not_moved(source: RegistryLocation, trusted: TrustedTarget) -> ManifestBlob | None:
    """Refuse when the registry's tag names other content than the signed digest.

    The signed digest is what gets fetched either way; this catches a tag overwritten after
    signing (an unsigned push, or tampering) so the user hears about it instead of silently
    getting older content. Without mirrors the tag's manifest is fetched and hashed here and
    handed back, so a verified pull costs no extra round trip over an unverified one; with
    mirrors only a HEAD is asked of the registry (content comes from the mirrors by digest), and
    when the registry cannot be reached the signed digest alone decides.
    """
    tag = source.ref.tag or "latest"
    fetched: ManifestBlob | None = None
    try:
        if source.mirrors:
            current = source.client.head_manifest(source.ref.path, tag)
            current_digest = current.digest if current is not None else None
        else:
            current = None
        if current is None:
            fetched = source.client.get_manifest(source.ref.path, tag)
            current_digest = fetched.digest  # hashed from the bytes, never a header
    except NotFoundError:
        current_digest = None
    except (UnreachableError, AuthenticationError):
        if source.mirrors:
            return None
        raise
    if current_digest != trusted.digest:
        where = f"{source.ref.repository}:{tag}"
        now = current_digest or "nothing"
        raise TagMovedError(
            f"{where} in the registry points at {now}, but its signed digest is "
            f"{trusted.digest}: the tag was overwritten without being signed",
            hint=(
                f"sign the new image (trustkit trust sign {where}) or pull the signed one "
                f"by digest ({source.ref.repository}@{trusted.digest})"
            ),
        )
    return fetched


def pull_checked(
    services: Services,
    ref: str,
    *,
    dest: str | ImageLocation | None = None,
    verify: bool,
    policy_files: Sequence[Path] = (),
) -> tuple[Verdict | None, PullResult]:
    """The pull flow: the pipeline decides, then exactly the digest it judged is fetched.

    Fetching the tag again after the verdict would let a tag moved in between (or a registry
    answering differently the second time) deliver content no policy looked at.
    """
    verdict: Verdict | None = None
    if not ref.startswith("oci:"):
        verdict = _refuse_unless_allowed(
            check_image(
                services, ref, context=Context.PULL, policy_files=policy_files, require_trust=verify
            )
        )
    judged = verdict.digest if verdict is not None else None
    return verdict, pull_image(services, ref, dest=dest, verify=verify, judged_digest=judged)


def pull_image(
    services: Services | Settings,
    ref: str | refs.ImageRef,
    *,
    dest: str | ImageLocation | None = None,
    verify: bool,
    judged_digest: str | None = None,
) -> PullResult:
    """Fetch ``ref``; with ``verify`` its tag is resolved through verified trust data first.

    A reference with a digest skips the tag lookup, but every byte is still checked against it.
    ``judged_digest`` is the digest a verdict was given for: exactly that content is fetched, and
    trust data that now resolves the tag to anything else is refused.
    """
    from trustkit.registry import RegistryLocation, fetch_image, open_image_location

    services = as_services(services)
    image = refs.parse(ref) if isinstance(ref, str) else ref
    trusted: TrustedTarget | None = None
    expected_digest = image.digest
    expected_size: int | None = None
    if expected_digest is None and verify:
        trusted = _verified_target(services, image)
        expected_digest, expected_size = trusted.digest, trusted.size
    if judged_digest is not None:
        if expected_digest is not None and expected_digest != judged_digest:
            raise DigestMismatchError(
                f"{image.familiar} now resolves to {expected_digest}, but the verdict was "
                f"given for {judged_digest}: refusing to fetch content no policy judged",
                hint="pull again",
            )
        expected_digest = judged_digest
    source = open_image_location(services.registries, str(image))
    prefetched: ManifestBlob | None = None
    if trusted is not None and isinstance(source, RegistryLocation):
        try:
            prefetched = _check_tag_not_moved(source, trusted)
        except BaseException:
            source.close()
            raise
    target: ImageLocation | None = (
        open_image_location(services.registries, dest) if isinstance(dest, str) else dest
    )
    try:
        dest_reference = None
        if target is not None and target.reference is None and image.tag is not None:
            dest_reference = image.tag
        descriptor = fetch_image(
            source,
            expected_digest=expected_digest,
            expected_size=expected_size,
            dest=target,
            dest_reference=dest_reference,
            top=prefetched,
        )
    finally:
        source.close()
        if target is not None:
            target.close()
    return PullResult(
        image,
        descriptor,
        verified=verify or image.digest is not None,
        trusted=trusted,
        dest=target.describe() if target is not None else None,
    )
