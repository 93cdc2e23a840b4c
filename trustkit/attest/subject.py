"""Is a scanner's report about this image? The report's own words, checked against the digest.

An attestation's statement names the image digest, but the report inside names what the scanner
actually looked at (Trivy ``Metadata.RepoDigests`` / ``ImageID``, Grype ``source.target``
``manifestDigest`` / ``repoDigests`` / ``imageID``, SARIF run ``properties``). A clean report of
busybox signed as a scan of ``app:v1`` says so itself, so it is refused, at attest time and again
at verify time (an attestation made elsewhere, or by an older trustkit, gets the same check).

* A report naming manifest digests must name this image's (or, for an index, one of its
  manifests'); a report naming an image config must name this image's config when it is known.
  Otherwise: ``AttestationError``, naming what the report is about.
* A report naming another repository (same content pushed under two names) is kept, with a
  warning: the content is what was scanned, but someone may have mixed reports up.
* A report naming no image at all (a filesystem or tarball scan) is kept: it cannot be checked.
"""

from __future__ import annotations

from collections.abc import Collection

from trustkit import refs
from trustkit.errors import AttestationError, TrustkitError
from trustkit.model.findings import ScanReport


def _repository(name: str) -> str | None:
    try:
        return refs.parse_repository(name).repository
    except TrustkitError:
        return None


def check_report_subject(
    report: ScanReport,
    image_digest: str,
    *,
    repository: str | None,
    manifests: Collection[str] = (),
    configs: Collection[str] = (),
) -> tuple[str, ...]:
    """Raise AttestationError when ``report`` names another image than ``image_digest``.

    ``manifests``: other manifest digests that are this image (an index's children);
    ``configs``: the image's config digest(s) when known. Returns warnings (another repository).
    """
    accepted = {image_digest, *manifests}
    named = report.named_digests
    if named and accepted.isdisjoint(named):
        raise AttestationError(
            f"the report is about {_names(report)}, not about {image_digest[:19]}…"
            " (a report of another image does not vouch for this one)"
        )
    config = report.named_config
    if config and configs and config not in configs:
        raise AttestationError(
            f"the report is about image config {config[:19]}…, not this image's "
            f"({', '.join(c[:19] + '…' for c in configs)})"
        )
    if repository is None or not report.named_repositories:
        return ()
    want = _repository(repository)
    theirs = {r for name in report.named_repositories if (r := _repository(name)) is not None}
    if want is None or not theirs or want in theirs:
        return ()
    return (
        f"the report names repository {', '.join(sorted(theirs))}, not {want} "
        "(same content, another name)",
    )


def _names(report: ScanReport) -> str:
    shown = [d[:19] + "…" for d in report.named_digests[:3]]
    if report.named_repositories:
        shown.insert(0, report.named_repositories[0])
    return " ".join(shown)
