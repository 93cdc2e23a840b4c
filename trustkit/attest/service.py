"""The attestation workflows the CLI, ``push --scan``, the policy engine and the pipeline call.

* ``attest_report`` — parse a report, apply VEX, sign a statement about the image's *digest*
  with a scanner key from the key store, and attach it.
* ``scan_and_attest`` — the same, running the configured scanner when no report is given.
* ``verified_scans`` — fetch every attestation of an image, verify each against trusted scanner
  keys, and return the verified ones newest first plus one line per unverifiable one.
"""

from __future__ import annotations

import contextlib
import json
import random
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trustkit._fs import read_bounded
from trustkit.attest._json import format_time
from trustkit.attest.dsse import MAX_ENVELOPE_BYTES, sign_statement, verify_attestation
from trustkit.attest.highwater import ScanMarks, scan_order_time
from trustkit.attest.model import ScanReport, VerifiedScan
from trustkit.attest.oci import (
    Attached,
    Skipped,
    attach_attestation,
    attestation_layers,
    is_attached,
    iter_attestations,
)
from trustkit.attest.reports import MAX_REPORT_BYTES, parse_report
from trustkit.attest.statement import PREDICATE_COSIGN_VULN, PREDICATE_TYPES, build_statement
from trustkit.attest.subject import check_report_subject
from trustkit.attest.vex import MAX_VEX_BYTES, VexDocument, apply_vex, parse_vex
from trustkit.config import Settings, child_environment
from trustkit.errors import (
    AttestationError,
    BadInputError,
    KeyStoreError,
    RegistryError,
    TrustEnvironmentError,
    TrustkitError,
)
from trustkit.keys import Key, KeyStore, Signer
from trustkit.registry.location import ImageLocation, open_image_location
from trustkit.registry.model import Descriptor, ManifestBlob
from trustkit.services import Services, as_services

DEFAULT_KEY_NAME = "scanner"
SCANNER_ROLE = "scanner"
SCANNER_TIMEOUT = 30 * 60


@dataclass(frozen=True)
class AttestResult:
    image: str  # the location as the user named it
    image_digest: str
    report: ScanReport  # VEX applied
    predicate_type: str
    signer_keyid: str
    attached: Attached
    #: the report names another repository (same digest): worth a look, not a refusal
    warnings: tuple[str, ...] = ()


@contextlib.contextmanager
def opened(services: Services | Settings, image: str | ImageLocation) -> Iterator[ImageLocation]:
    """A location from text (closed afterwards) or the caller's own location (left open)."""
    if isinstance(image, str):
        location = open_image_location(as_services(services).registries, image)
        try:
            yield location
        finally:
            location.close()
    else:
        yield image


def resolve_subject(location: ImageLocation) -> Descriptor:
    """The image manifest the location names now (a tag is resolved to its current digest)."""
    return location.get_manifest(location.reference).descriptor


def subject_name(location: ImageLocation) -> str:
    ref = location.ref
    return ref.repository if ref is not None else location.describe().split("@")[0]


def predicate_uri(name: str) -> str:
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if name in PREDICATE_TYPES.values():
        return name
    raise BadInputError(f"unknown predicate type {name!r} (choose {', '.join(PREDICATE_TYPES)})")


def scanner_signer(
    services: Services | Settings, key_name: str | None, store: KeyStore | None = None
) -> Signer:
    """The signer of the scanner key named ``key_name`` (default "scanner").

    With no name given and no key called "scanner", a single scanner-role key is used; anything
    else is an error telling the user how to make one. Keys are never created implicitly: a
    scan attestation is only as trustworthy as the deliberate choice of its key.
    """
    store = store or as_services(services).keys
    name = key_name or DEFAULT_KEY_NAME
    records = store.records(role=SCANNER_ROLE, name=name)
    if not records and key_name is None:
        records = store.records(role=SCANNER_ROLE)
        if len(records) > 1:
            names = ", ".join(sorted(r.name or r.keyid[:12] for r in records))
            raise KeyStoreError(
                f"several scanner keys ({names}) and none named {DEFAULT_KEY_NAME!r}",
                hint="choose one with --key NAME",
            )
    if not records:
        raise KeyStoreError(
            f"no scanner key named {name!r} in the key store",
            hint=f"create one with: trustkit trust key generate {name} --role scanner",
        )
    return store.signer(records[-1].keyid)


def load_vex_files(paths: Sequence[Path]) -> list[VexDocument]:
    docs = []
    for path in paths:
        try:
            data = read_bounded(path, MAX_VEX_BYTES, what="VEX document")
        except FileNotFoundError:
            raise BadInputError(f"VEX document {path} does not exist") from None
        docs.append(parse_vex(data, source=path.name))
    return docs


@dataclass(frozen=True)
class SignedScan:
    """A scan statement about one digest, signed but not yet attached: ``push --scan`` signs it
    before the upload so policy judges these very bytes, then attaches them after the upload."""

    repository: str
    subject: Descriptor
    report: ScanReport  # VEX applied
    predicate_type: str
    signer_keyid: str
    envelope: bytes
    created: str  # when it was signed (the attachment's creation time)
    warnings: tuple[str, ...] = ()


def sign_scan(
    subject_blob: ManifestBlob,
    *,
    repository: str,
    check_repository: bool,
    report: ScanReport,
    raw_report: Any,
    vex: Sequence[VexDocument] = (),
    predicate_type: str = PREDICATE_COSIGN_VULN,
    signer: Signer,
    scan_started_on: datetime | None = None,
) -> SignedScan:
    """Sign a statement of ``report`` (parsed by ``parse_report``; ``raw_report`` its JSON)
    about ``subject_blob``; no registry is touched. A report naming another image is refused
    here (``check_report_subject``)."""
    predicate = predicate_uri(predicate_type)
    attested = datetime.now(UTC)
    # metadata.scanFinishedOn is the scanner's time (the report's creation), not ours: a
    # verifier judging freshness must not be told an old report is new (issue 14)
    finished = report.created or attested
    # the scanner's time as a verifier may rely on it: the report's, or ours when we ran it
    scanner_time = report.created or (attested if scan_started_on is not None else None)
    subject = subject_blob.descriptor
    manifests, configs = _identity(subject_blob)
    warnings = check_report_subject(
        report,
        subject.digest,
        repository=repository if check_repository else None,
        manifests=manifests,
        configs=configs,
    )
    statement = build_statement(
        repository=repository,
        image_digest=subject.digest,
        report=report,
        raw_report=raw_report,
        vex_docs=vex,
        predicate_type=predicate,
        scan_started_on=scan_started_on,
        scan_finished_on=finished,
        scanner_time=scanner_time,
    )
    return SignedScan(
        repository=repository,
        subject=subject,
        report=apply_vex(report, vex),
        predicate_type=predicate,
        signer_keyid=signer.public_key.keyid,
        envelope=sign_statement(statement, signer),
        created=format_time(attested),
        warnings=warnings,
    )


def attach_signed_scan(location: ImageLocation, signed: SignedScan) -> AttestResult:
    """Attach a ``SignedScan`` to its subject at ``location`` (which must hold the subject)."""
    attached = _attach_until_present(
        location,
        signed.subject,
        signed.envelope,
        predicate=signed.predicate_type,
        created=signed.created,
    )
    return AttestResult(
        image=location.describe(),
        image_digest=signed.subject.digest,
        report=signed.report,
        predicate_type=signed.predicate_type,
        signer_keyid=signed.signer_keyid,
        attached=attached,
        warnings=signed.warnings,
    )


def attest_report(
    services: Services | Settings,
    image: str | ImageLocation,
    *,
    report_bytes: bytes,
    report_source: str = "<report>",
    format: str = "auto",
    vex: Sequence[VexDocument] = (),
    key_name: str | None = None,
    predicate_type: str = PREDICATE_COSIGN_VULN,
    signer: Signer | None = None,
    scan_started_on: datetime | None = None,
) -> AttestResult:
    """Parse, sign and attach a report about ``image``'s current digest."""
    services = as_services(services)
    predicate_uri(predicate_type)  # an unknown predicate refuses before the report is read
    report = parse_report(report_bytes, format=format, source=report_source)
    raw_report = json.loads(report_bytes)  # already validated by parse_report
    signer = signer or scanner_signer(services, key_name)
    with opened(services, image) as location:
        signed = sign_scan(
            location.get_manifest(location.reference),
            repository=subject_name(location),
            check_repository=location.ref is not None,
            report=report,
            raw_report=raw_report,
            vex=vex,
            predicate_type=predicate_type,
            signer=signer,
            scan_started_on=scan_started_on,
        )
        return attach_signed_scan(location, signed)


def _identity(blob: ManifestBlob) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(other manifest digests that are this image, its config digests) — an index's children;
    an image manifest's config. What a scanner's report may name for this image."""
    try:
        if blob.is_index:
            return tuple(child.digest for child in blob.children()), ()
        return (), (blob.blobs()[0].digest,)
    except (BadInputError, IndexError):
        return (), ()


#: how often an attach is retried when a racing writer dropped it
ATTACH_ATTEMPTS = 8
#: how long after attaching the read-back waits: a writer that read the old ``.att`` manifest
#: before our write lands its own write within this, and the read-back then sees our loss
ATTACH_SETTLE_SECONDS = 0.3


def _attach_until_present(
    location: ImageLocation,
    subject: Descriptor,
    envelope: bytes,
    *,
    predicate: str,
    created: str,
) -> Attached:
    """Attach, read back, and attach again while a racing writer's read-modify-write of the
    ``.att`` manifest or fallback index lost our entry (tags have no compare-and-swap).

    The read-back waits ATTACH_SETTLE_SECONDS so that a writer which read before our write
    has landed its own by then. A writer slower than that can still drop our entry after we
    return: the window is narrowed, not closed (docs/attestations.md)."""
    for attempt in range(ATTACH_ATTEMPTS):
        try:
            attached = attach_attestation(
                location, subject, envelope, predicate_type=predicate, created=created
            )
        except RegistryError:
            # docker-registry answers 500 to racing writes of one tag: try again, then give up
            if attempt == ATTACH_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.02, 0.2) * (attempt + 1))
            continue
        time.sleep(ATTACH_SETTLE_SECONDS)
        if is_attached(location, subject.digest, attached):
            return attached
        time.sleep(random.uniform(0.02, 0.2) * (attempt + 1))  # let the other writers finish
    raise AttestationError(
        f"the attestation was attached {ATTACH_ATTEMPTS} times and lost each time to concurrent "
        "writers; it is not attached",
        hint="run scan attest again once the other writers are done",
    )


def run_scanner(command: str, target: str) -> bytes:
    """Run ``command`` on ``target`` ("{image}" in the command is replaced, else appended)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise BadInputError(f"scanner command {command!r} does not parse: {exc}") from None
    if not argv:
        raise BadInputError("the scanner command is empty")
    if any("{image}" in arg for arg in argv):
        argv = [arg.replace("{image}", target) for arg in argv]
    else:
        argv.append(target)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=SCANNER_TIMEOUT,
            check=False,
            env=child_environment(),  # the scanner never sees our passphrases
        )
    except FileNotFoundError:
        raise TrustEnvironmentError(
            f"scanner executable {argv[0]!r} not found",
            hint="install it, or set SERVIN_SCANNER to the scanner command, or pass --report",
        ) from None
    except PermissionError:
        raise TrustEnvironmentError(f"scanner executable {argv[0]!r} is not executable") from None
    except subprocess.TimeoutExpired:
        raise TrustEnvironmentError(
            f"scanner {argv[0]!r} did not finish in {SCANNER_TIMEOUT} s"
        ) from None
    if done.returncode != 0:
        tail = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        raise TrustEnvironmentError(
            f"scanner {argv[0]!r} failed with exit status {done.returncode}: {tail[:200]}"
        )
    if len(done.stdout) > MAX_REPORT_BYTES:
        raise BadInputError(f"scanner output is over the {MAX_REPORT_BYTES}-byte limit")
    return done.stdout


def scan_and_attest(
    services: Services | Settings,
    image_ref_or_location: str | ImageLocation,
    *,
    report: Path | None,
    scanner_command: str | None,
    key_name: str | None,
    vex: Sequence[Path] = (),
    format: str = "auto",
    predicate_type: str = PREDICATE_COSIGN_VULN,
) -> AttestResult:
    """``push --scan``: attest ``report``, or run the scanner on the pushed digest first.

    ``scanner_command`` falls back to ``settings.scanner_command`` (SERVIN_SCANNER). The scanner
    gets the digest-pinned reference (``repo@sha256:...``) so it scans exactly what is attested;
    for an OCI layout it gets the layout directory.
    """
    services = as_services(services)
    vex_docs = load_vex_files(vex)
    signer = scanner_signer(services, key_name)  # fail before a long scan if there is no key
    with opened(services, image_ref_or_location) as location:
        started = datetime.now(UTC).replace(microsecond=0)
        if report is not None:
            try:
                data = read_bounded(report, MAX_REPORT_BYTES, what="scan report")
            except FileNotFoundError:
                raise BadInputError(f"scan report {report} does not exist") from None
            source = report.name
        else:
            command = scanner_command or services.settings.scanner_command
            if not command:
                raise BadInputError(
                    "no scan report and no scanner command",
                    hint="pass --report FILE or set SERVIN_SCANNER (e.g. 'trivy image -f json')",
                )
            subject = resolve_subject(location)
            ref = location.ref
            target = (
                str(ref.with_digest(subject.digest))
                if ref is not None
                else location.describe().removeprefix("oci:").split(":")[0].split("@")[0]
            )
            data = run_scanner(command, target)
            source = f"output of {shlex.split(command)[0]}"
        return attest_report(
            services,
            location,
            report_bytes=data,
            report_source=source,
            format=format,
            vex=vex_docs,
            predicate_type=predicate_type,
            signer=signer,
            scan_started_on=started if report is None else None,
        )


def default_trusted_keys(services: Services | Settings) -> list[Key]:
    """Public keys of the scanner-role keys in the local key store."""
    keys = as_services(services).keys
    return [record.public_key for record in keys.records(role=SCANNER_ROLE)]


def verified_scans(
    services: Services | Settings,
    ref_or_location: str | ImageLocation,
    *,
    trusted_keys: Sequence[Key],
    remember: bool = True,
) -> tuple[list[VerifiedScan], list[str]]:
    """(verified scans newest first, reasons for each attestation not used).

    The image is resolved to its current digest first; only statements about that digest,
    signed by one of ``trusted_keys``, whose report does not name another image, are returned.
    Envelopes are downloaded and verified one at a time within the per-image byte budget
    (``services.bounds.attestations_per_image``). Newest means by the scanner's time, sub-second;
    at the same time the stricter scan (more severe findings) comes first. With ``remember``,
    the client's high-water marks refuse a rolled-back attestation set (``highwater``): then no
    scan is returned. Registry errors propagate (fail closed).
    """
    services = as_services(services)
    budget = services.bounds.attestations_per_image
    keys = list(trusted_keys)
    verified: list[VerifiedScan] = []
    problems: list[str] = []
    with opened(services, ref_or_location) as location:
        subject_blob = location.get_manifest(location.reference)
        digest = subject_blob.descriptor.digest
        manifests, configs = _identity(subject_blob)
        repository = subject_name(location) if location.ref is not None else None
        layers = attestation_layers(location, digest)
        for item in iter_attestations(
            location, layers, budget=budget, per_envelope=min(budget, MAX_ENVELOPE_BYTES)
        ):
            if isinstance(item, Skipped):
                problems.append(f"{item.digest[:19]}: not downloaded: {item.reason}")
                continue
            layer, envelope = item
            try:
                scan = verify_attestation(envelope, trusted_keys=keys, image_digest=digest)
                warnings = check_report_subject(
                    scan.report,
                    digest,
                    repository=repository,
                    manifests=manifests,
                    configs=configs,
                )
            except TrustkitError as exc:  # AttestationError, or a malformed report inside
                problems.append(f"{layer.digest[:19]}: {exc.one_line()}")
                continue
            finally:
                del envelope  # one envelope in memory at a time
            if warnings:
                scan.extras["warning"] = "; ".join(warnings)
            verified.append(scan)
    verified.sort(key=_newest_first)
    if remember and keys:
        marks = ScanMarks(services.settings.trust_dir / "scans")
        rollbacks = marks.check_and_raise(digest, verified, [k.keyid for k in keys])
        if rollbacks:
            return [], [*(r.reason() for r in rollbacks), *problems]
    return verified, problems


def _newest_first(scan: VerifiedScan) -> tuple[Any, ...]:
    """Sort key: the scanner's time descending, then the stricter scan, then a fixed order."""
    moment = scan_order_time(scan)
    return (-moment.timestamp(), tuple(-n for n in scan.strictness()), scan.attestation_digest)
