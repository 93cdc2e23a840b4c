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
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trustkit._fs import read_bounded
from trustkit.attest._json import format_time
from trustkit.attest.dsse import envelope_digest, sign_statement, verify_attestation
from trustkit.attest.model import ScanReport, VerifiedScan
from trustkit.attest.oci import Attached, attach_attestation, fetch_attestations
from trustkit.attest.reports import MAX_REPORT_BYTES, parse_report
from trustkit.attest.statement import PREDICATE_COSIGN_VULN, PREDICATE_TYPES, build_statement
from trustkit.attest.vex import MAX_VEX_BYTES, VexDocument, apply_vex, parse_vex
from trustkit.config import Settings, child_environment
from trustkit.errors import (
    BadInputError,
    KeyStoreError,
    TrustEnvironmentError,
    TrustkitError,
)
from trustkit.keys import Key, KeyStore, Signer
from trustkit.registry.location import ImageLocation, open_image_location
from trustkit.registry.model import Descriptor
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
    predicate = predicate_uri(predicate_type)
    report = parse_report(report_bytes, format=format, source=report_source)
    raw_report = json.loads(report_bytes)  # already validated by parse_report
    signer = signer or scanner_signer(services, key_name)
    finished = datetime.now(UTC).replace(microsecond=0)
    with opened(services, image) as location:
        subject = resolve_subject(location)
        statement = build_statement(
            repository=subject_name(location),
            image_digest=subject.digest,
            report=report,
            raw_report=raw_report,
            vex_docs=vex,
            predicate_type=predicate,
            scan_started_on=scan_started_on,
            scan_finished_on=finished,
        )
        envelope = sign_statement(statement, signer)
        attached = attach_attestation(
            location, subject, envelope, predicate_type=predicate, created=format_time(finished)
        )
        return AttestResult(
            image=location.describe(),
            image_digest=subject.digest,
            report=apply_vex(report, vex),
            predicate_type=predicate,
            signer_keyid=signer.public_key.keyid,
            attached=attached,
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
) -> tuple[list[VerifiedScan], list[str]]:
    """(verified scans newest first by scanFinishedOn, reasons for each unverifiable one).

    The image is resolved to its current digest first; only statements about that digest and
    signed by one of ``trusted_keys`` are returned. An unverifiable attestation is reported, never
    used. Registry errors propagate (fail closed).
    """
    with opened(services, ref_or_location) as location:
        digest = resolve_subject(location).digest
        envelopes = fetch_attestations(location, digest)
    verified: list[VerifiedScan] = []
    problems: list[str] = []
    for envelope in envelopes:
        try:
            verified.append(
                verify_attestation(envelope, trusted_keys=list(trusted_keys), image_digest=digest)
            )
        except TrustkitError as exc:  # AttestationError, or a malformed report inside
            problems.append(f"{envelope_digest(envelope)[:19]}: {exc.one_line()}")
    verified.sort(key=lambda scan: scan.scan_finished_on, reverse=True)
    return verified, problems
