"""Scan evidence that cannot be walked around (issue 14, "Scan evidence").

Every test attacks the way the issue describes, against a real docker-registry on 127.0.0.1:
an old report attested today, a report of another image, a restored older attestation set,
parallel attesters, two scans in one second, a published key loaded into the key store, and
huge unsigned fake attestations.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fixtures.cosign import put_tiny_image

from trustkit.attest import service as attest_service
from trustkit.attest.dsse import ENVELOPE_MEDIA_TYPE, sign_statement
from trustkit.attest.oci import att_tag, attach_attestation, attestation_layers, referrers_tag
from trustkit.attest.reports import parse_report
from trustkit.attest.service import attest_report, verified_scans
from trustkit.attest.statement import build_statement
from trustkit.config import Settings
from trustkit.enforce import check_image
from trustkit.errors import AttestationError
from trustkit.keys import CryptoSigner, public_key_pem
from trustkit.policy import Policy, load_policy_text
from trustkit.registry.location import ImageLocation, open_image_location
from trustkit.registry.model import Descriptor, sha256_digest
from trustkit.services import Bounds, Services
from trustkit.verdict import Action, Context, Verdict

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)


def trivy(
    created: datetime | None,
    *,
    digest: str | None = None,
    repository: str = "scanned/app",
    critical: int = 0,
) -> bytes:
    """A Trivy (SchemaVersion 2) report about ``repository@digest`` with ``critical`` findings."""
    doc: dict[str, Any] = {
        "SchemaVersion": 2,
        "ArtifactName": repository,
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": [f"{repository}@{digest}"] if digest else []},
        "Results": [
            {
                "Target": "app (alpine 3.19)",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": f"CVE-2099-{1000 + i}",
                        "PkgName": "openssl",
                        "InstalledVersion": "3.0.0",
                        "FixedVersion": "3.0.1",
                        "Status": "fixed",
                        "Severity": "CRITICAL",
                    }
                    for i in range(critical)
                ],
            }
        ],
    }
    if created is not None:
        doc["CreatedAt"] = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def scanner() -> CryptoSigner:
    return CryptoSigner.generate_ecdsa()


@pytest.fixture
def scanner_pem(tmp_path: Path, scanner: CryptoSigner) -> Path:
    path = tmp_path / "scanner.pub"
    path.write_bytes(public_key_pem(scanner.public_key))
    path.chmod(0o600)
    return path


def scan_policy(name: str, pem: Path | None, **rules: Any) -> Policy:
    rules.setdefault("severity", "CRITICAL")
    lines = [f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: BLOCK\nrules:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in rules.items()]
    if pem is not None:
        lines.append(f"  trusted_scanners: [{json.dumps(str(pem))}]")
    return load_policy_text("\n".join(lines) + "\n")


def judge(settings: Settings, image: str, *policies: Policy) -> Verdict:
    return check_image(
        settings, image, context=Context.CI, policies=list(policies), require_trust=False
    )


@pytest.fixture
def image(
    attest_registry: str, settings: Settings, request: pytest.FixtureRequest
) -> Iterator[str]:
    name = request.node.name.replace("_", "-")[:50].strip("-")
    ref = f"{attest_registry}/evidence/{name}:v1"
    location = open_image_location(settings, ref)
    try:
        put_tiny_image(location, "v1", salt=request.node.name)
    finally:
        location.close()
    yield ref


def digest_of(settings: Settings, ref: str) -> str:
    location = open_image_location(settings, ref)
    try:
        return location.get_manifest(location.reference).descriptor.digest
    finally:
        location.close()


# --- max_scan_age measures the scan, not the attestation ---------------------------------------


def test_a_ten_month_old_report_attested_today_is_ten_months_old(
    settings: Settings, image: str, scanner: CryptoSigner, scanner_pem: Path
) -> None:
    digest = digest_of(settings, image)
    fresh_only = scan_policy("fresh", scanner_pem, max_scan_age="7d")
    old = trivy(NOW - timedelta(days=300), digest=digest, repository=image.rsplit(":", 1)[0])
    attest_report(settings, image, report_bytes=old, signer=scanner)  # attested right now
    verdict = judge(settings, image, fresh_only)
    assert verdict.action is Action.BLOCK
    assert "300 days old, older than max_scan_age 7d" in verdict.reasons[0].message
    # a scan the scanner made an hour ago is fresh
    attest_report(settings, image, report_bytes=trivy(NOW - timedelta(hours=1)), signer=scanner)
    assert judge(settings, image, fresh_only).allowed


def test_a_report_without_a_time_cannot_satisfy_max_scan_age(
    settings: Settings, image: str, scanner: CryptoSigner, scanner_pem: Path
) -> None:
    attest_report(settings, image, report_bytes=trivy(None), signer=scanner)
    verdict = judge(settings, image, scan_policy("fresh", scanner_pem, max_scan_age="30d"))
    assert verdict.action is Action.BLOCK
    assert "carries no scanner time" in verdict.reasons[0].message
    # without max_scan_age the same scan counts
    assert judge(settings, image, scan_policy("any-age", scanner_pem)).allowed


def test_grype_database_age_counts(
    settings: Settings, image: str, scanner: CryptoSigner, scanner_pem: Path
) -> None:
    """A report written today from a database built 200 days ago knows nothing newer."""
    grype = {
        "matches": [],
        "source": {"type": "image", "target": {"userInput": "app"}},
        "descriptor": {
            "name": "grype",
            "version": "0.80.0",
            "timestamp": NOW.isoformat(),
            "db": {"built": (NOW - timedelta(days=200)).isoformat()},
        },
    }
    attest_report(settings, image, report_bytes=json.dumps(grype).encode(), signer=scanner)
    verdict = judge(settings, image, scan_policy("fresh", scanner_pem, max_scan_age="30d"))
    assert verdict.action is Action.BLOCK and "200 days old" in verdict.reasons[0].message


def test_sarif_run_times_are_the_scan_time() -> None:
    sarif = json.loads((ROOT / "tests/data/reports/trivy_alpine-310.sarif").read_bytes())
    assert parse_report(json.dumps(sarif).encode()).created is None
    sarif["runs"][0]["invocations"] = [{"startTimeUtc": "2026-01-02T03:04:05.5Z"}]
    assert parse_report(json.dumps(sarif).encode()).created == datetime(
        2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC
    )


# --- a report about another image ----------------------------------------------------------------


def test_a_clean_busybox_report_is_not_a_scan_of_the_app(
    settings: Settings, image: str, scanner: CryptoSigner, scanner_pem: Path
) -> None:
    busybox = "sha256:" + "b0" * 32
    report = trivy(NOW, digest=busybox, repository="docker.io/library/busybox")
    with pytest.raises(AttestationError, match=r"is about docker\.io/library/busybox"):
        attest_report(settings, image, report_bytes=report, signer=scanner)
    # the attacker attests it anyway, with another tool (or an older trustkit)
    location = open_image_location(settings, image)
    try:
        subject = location.get_manifest(location.reference).descriptor
        statement = build_statement(
            repository="evidence/app",
            image_digest=subject.digest,
            report=parse_report(report),
            raw_report=json.loads(report),
            scan_finished_on=NOW,
        )
        attach_attestation(
            location,
            subject,
            sign_statement(statement, scanner),
            predicate_type=statement["predicateType"],
            created=NOW.isoformat(),
        )
    finally:
        location.close()
    scans, problems = verified_scans(settings, image, trusted_keys=[scanner.public_key])
    assert scans == []
    assert len(problems) == 1 and "a report of another image" in problems[0]
    verdict = judge(settings, image, scan_policy("scanned", scanner_pem))
    assert verdict.action is Action.BLOCK
    assert "a report of another image" in verdict.reasons[0].message


def test_a_report_naming_another_image_config_is_refused(
    settings: Settings, image: str, scanner: CryptoSigner
) -> None:
    doc = json.loads(trivy(NOW))
    doc["Metadata"]["ImageID"] = "sha256:" + "c0" * 32
    with pytest.raises(AttestationError, match="image config"):
        attest_report(settings, image, report_bytes=json.dumps(doc).encode(), signer=scanner)


def test_another_repository_of_the_same_digest_is_a_warning(
    settings: Settings, image: str, scanner: CryptoSigner, scanner_pem: Path
) -> None:
    digest = digest_of(settings, image)
    report = trivy(NOW, digest=digest, repository="mirror.example/other/app")
    result = attest_report(settings, image, report_bytes=report, signer=scanner)
    assert result.warnings and "mirror.example/other/app" in result.warnings[0]
    (scan,), _ = verified_scans(settings, image, trusted_keys=[scanner.public_key])
    assert "mirror.example/other/app" in scan.extras["warning"]
    from click.testing import CliRunner

    from trustkit.cli import cli

    shown = CliRunner().invoke(
        cli,
        ["scan", "results", image, "--trusted-key", str(scanner_pem), "--output", "json"],
        env={"SERVIN_TRUST_DIR": str(settings.trust_dir)},
    )
    assert shown.exit_code == 0, shown.output
    assert "mirror.example/other/app" in json.loads(shown.output)["newest"]["warning"]


# --- rollback of the attestation set -------------------------------------------------------------


def _raw(location: ImageLocation, reference: str) -> tuple[bytes, str]:
    blob = location.get_manifest(reference)
    return blob.data, blob.media_type


def test_a_restored_older_attestation_set_is_refused(
    settings: Settings, image: str, scanner: CryptoSigner, scanner_pem: Path, tmp_path: Path
) -> None:
    policy = scan_policy("no-critical", scanner_pem)
    digest = digest_of(settings, image)
    attest_report(settings, image, report_bytes=trivy(NOW - timedelta(hours=2)), signer=scanner)
    assert judge(settings, image, policy).allowed  # this client has seen the clean scan
    location = open_image_location(settings, image)
    try:
        saved = [(tag, *_raw(location, tag)) for tag in (att_tag(digest), referrers_tag(digest))]
    finally:
        location.close()
    attest_report(settings, image, report_bytes=trivy(NOW, critical=2), signer=scanner)
    blocked = judge(settings, image, policy)
    assert blocked.action is Action.BLOCK and "CVE-2099-1000" in blocked.reasons[0].message

    # whoever can push restores the older .att manifest and referrers index
    location = open_image_location(settings, image)
    try:
        for tag, data, media_type in saved:
            location.put_manifest(tag, data, media_type)
    finally:
        location.close()
    rolled_back = judge(settings, image, policy)
    assert rolled_back.action is Action.BLOCK
    assert "scan evidence rolled back" in rolled_back.reasons[0].message
    scans, problems = verified_scans(settings, image, trusted_keys=[scanner.public_key])
    assert scans == [] and "rolled back" in problems[0]
    # what it cannot protect: a client that never saw the newer scan (documented)
    fresh = settings.with_changes(trust_dir=tmp_path / "fresh-client")
    assert judge(fresh, image, policy).allowed


def test_a_damaged_mark_file_is_an_error_not_an_open_door(
    settings: Settings, image: str, scanner: CryptoSigner
) -> None:
    digest = digest_of(settings, image)
    attest_report(settings, image, report_bytes=trivy(NOW), signer=scanner)
    verified_scans(settings, image, trusted_keys=[scanner.public_key])
    mark = settings.trust_dir / "scans" / f"{digest[7:]}.json"
    assert json.loads(mark.read_text())["keys"][scanner.public_key.keyid]
    mark.write_text("{not json")
    from trustkit.errors import StorageError

    with pytest.raises(StorageError, match="unreadable"):
        verified_scans(settings, image, trusted_keys=[scanner.public_key])


# --- parallel attesters --------------------------------------------------------------------------


def test_parallel_attests_all_land(settings: Settings, image: str, scanner: CryptoSigner) -> None:
    writers = 6
    results: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def attest(i: int) -> None:
        report = trivy(NOW - timedelta(seconds=i))  # distinct envelopes
        start.wait()
        try:
            results.append(attest_report(settings, image, report_bytes=report, signer=scanner))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attest, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    digest = digest_of(settings, image)
    location = open_image_location(settings, image)
    try:
        present = {layer.digest for layer in attestation_layers(location, digest)}
        att = {layer.digest for layer in location.get_manifest(att_tag(digest)).blobs()[1:]}
        index = {d.digest for d in location.get_manifest(referrers_tag(digest)).children()}
    finally:
        location.close()
    wanted = {r.attached.envelope_digest for r in results}
    assert len(wanted) == writers
    assert wanted <= present and wanted <= att  # every "Attested" is really attached
    assert {r.attached.referrer_digest for r in results} <= index


def test_an_attestation_that_never_lands_is_a_failure(
    settings: Settings, image: str, scanner: CryptoSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attest_service, "ATTACH_SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(attest_service, "is_attached", lambda *args: False)
    with pytest.raises(AttestationError, match="lost each time to concurrent writers"):
        attest_report(settings, image, report_bytes=trivy(NOW), signer=scanner)


# --- two scans in one second ---------------------------------------------------------------------


def test_the_newer_scan_is_newest_within_a_second(
    settings: Settings, image: str, scanner: CryptoSigner
) -> None:
    second = NOW.replace(microsecond=0) - timedelta(minutes=5)
    later = trivy(second + timedelta(microseconds=900_000))
    earlier = trivy(second + timedelta(microseconds=100_000), critical=1)
    attest_report(settings, image, report_bytes=later, signer=scanner)  # attached first
    attest_report(settings, image, report_bytes=earlier, signer=scanner)
    scans, _ = verified_scans(settings, image, trusted_keys=[scanner.public_key])
    assert [len(s.report.findings) for s in scans] == [0, 1]
    assert scans[0].scanned_at == second + timedelta(microseconds=900_000)


def test_at_the_same_time_the_stricter_scan_wins(
    settings: Settings,
    image: str,
    scanner: CryptoSigner,
    scanner_pem: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same scanner time: a VEX-suppressed copy attached first must not hide the finding."""
    from trustkit.attest.vex import parse_vex

    moment = NOW - timedelta(minutes=5)
    report = trivy(moment, critical=1)
    vex = parse_vex(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "statements": [
                    {
                        "vulnerability": {"name": "CVE-2099-1000"},
                        "products": [{"@id": "pkg:oci/app"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_present",
                    }
                ],
            }
        ).encode(),
        source="app.vex.json",
    )

    class SameSecond(datetime):  # both attested in one second, too
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return moment

    monkeypatch.setattr(attest_service, "datetime", SameSecond)
    attest_report(settings, image, report_bytes=report, signer=scanner, vex=[vex])  # first
    attest_report(settings, image, report_bytes=report, signer=scanner)
    scans, _ = verified_scans(settings, image, trusted_keys=[scanner.public_key])
    assert [s.report.suppressed_count() for s in scans] == [0, 1]  # the stricter first
    verdict = judge(settings, image, scan_policy("p", scanner_pem))
    assert verdict.action is Action.BLOCK and "CVE-2099-1000" in verdict.reasons[0].message


# --- whose key counts ----------------------------------------------------------------------------


def test_the_published_demo_key_loaded_as_documented_is_trusted_by_no_policy(
    settings: Settings,
    image: str,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    scanner_pem: Path,
) -> None:
    from trustkit.cli import main

    demo = tmp_path / "demo-scanner.key"
    demo.write_bytes((ROOT / "keys-example" / "demo-scanner.key").read_bytes())
    demo.chmod(0o600)
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "trustkit-demo")
    with pytest.raises(SystemExit) as done:  # as keys-example/README.md says
        main(["trust", "key", "load", str(demo), "--name", "demo-scanner", "--role", "scanner"])
    assert done.value.code in (0, None)
    loaded = settings.with_changes(repository_passphrase="trustkit-demo")
    # anyone holding the published key attests a clean scan
    attest_report(loaded, image, report_bytes=trivy(NOW), key_name="demo-scanner")
    for policy in (scan_policy("names-none", None), scan_policy("names-mine", scanner_pem)):
        verdict = judge(loaded, image, policy)
        assert verdict.action is Action.BLOCK, policy.name
    reasons = {r.rule: r.message for r in judge(loaded, image, scan_policy("x", None)).reasons}
    assert "names no trusted_scanners" in reasons["trusted_scanners"]
    readme = (ROOT / "keys-example" / "README.md").read_text()
    assert "nothing may trust them" in readme and "mktemp" in readme


def test_one_policys_scanner_key_counts_for_that_policy_only(
    settings: Settings, image: str, scanner: CryptoSigner, scanner_pem: Path
) -> None:
    attest_report(settings, image, report_bytes=trivy(NOW), signer=scanner)
    other = scan_policy("other-team", None, require_scan=True)
    verdict = judge(settings, image, scan_policy("mine", scanner_pem), other)
    outcomes = {o.policy: o.action for o in verdict.policies}
    assert outcomes == {"mine": Action.ALLOW, "other-team": Action.BLOCK}


# --- huge unsigned fakes -------------------------------------------------------------------------


def _attach_fake(location: ImageLocation, subject: Descriptor, size: int, salt: int) -> str:
    """An unsigned 'attestation' of ``size`` bytes, listed in the .att manifest."""
    data = (b'{"payloadType":"application/vnd.in-toto+json","payload":"' + b"A" * size)[:size]
    data = data[:-8] + f"{salt:08d}".encode()
    desc = Descriptor(ENVELOPE_MEDIA_TYPE, sha256_digest(data), len(data))
    location.upload_blob(desc, data)
    from trustkit.attest import oci
    from trustkit.registry.artifacts import layered_manifest

    tag = att_tag(subject.digest)
    layers = oci._existing_layers(oci.get_optional_manifest(location, tag), tag)
    layers.append(desc)
    location.put_manifest(tag, layered_manifest(location, layers), oci.OCI_MANIFEST)
    return desc.digest


def test_fakes_over_the_budget_are_never_downloaded(
    settings: Settings, image: str, scanner: CryptoSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    attest_report(settings, image, report_bytes=trivy(NOW), signer=scanner)
    budget = 2 * 1024 * 1024
    location = open_image_location(settings, image)
    try:
        subject = location.get_manifest(location.reference).descriptor
        fakes = [_attach_fake(location, subject, 3 * 1024 * 1024, i) for i in range(4)]
    finally:
        location.close()
    fetched: list[str] = []
    from trustkit.registry import location as location_module

    real_get_blob = location_module.RegistryLocation.get_blob

    def counting(self: Any, digest: str, *, max_size: int) -> bytes:
        fetched.append(digest)
        return real_get_blob(self, digest, max_size=max_size)

    monkeypatch.setattr(location_module.RegistryLocation, "get_blob", counting)
    services = Services(settings, bounds=Bounds(attestations_per_image=budget))
    scans, problems = verified_scans(services, image, trusted_keys=[scanner.public_key])
    assert len(scans) == 1  # the genuine scan still counts
    assert not set(fakes) & set(fetched)
    assert sum("not downloaded" in p for p in problems) == 4


def test_fakes_within_the_budget_are_verified_one_by_one(
    settings: Settings, image: str, scanner: CryptoSigner
) -> None:
    location = open_image_location(settings, image)
    try:
        subject = location.get_manifest(location.reference).descriptor
        for i in range(3):
            _attach_fake(location, subject, 64 * 1024, i)
    finally:
        location.close()
    attest_report(settings, image, report_bytes=trivy(NOW), signer=scanner)
    scans, problems = verified_scans(settings, image, trusted_keys=[scanner.public_key])
    assert len(scans) == 1 and len(problems) == 3
    assert all("not valid JSON" in p for p in problems)
