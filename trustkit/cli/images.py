"""``trustkit push`` and ``trustkit pull``: thin wrappers over the pipeline's flows
(``trustkit.pipeline.flows``), so push, pull, hooks and the gate give the same verdict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trustkit.cli._common import (
    IMAGE,
    content_trust_option,
    echo_json,
    output_options,
    policy_option,
    quiet_option,
    refusal_document,
    refused_as_json,
    services_from,
    transfer_progress,
    wants_json,
)
from trustkit.verdict import Action, Verdict

if TYPE_CHECKING:
    from trustkit.pipeline.flows import PushResult
    from trustkit.registry.image_store import ImageStore
    from trustkit.registry.location import ImageLocation


def _print_warnings(verdict: Verdict | None) -> None:
    """WARN lets the image through and says why; AUDIT only records (in --json output)."""
    if verdict is None:
        return
    for reason in verdict.reasons:
        if reason.action is Action.WARN:
            click.echo(f"warning: [{reason.policy}/{reason.rule}] {reason.message}", err=True)


def image_store(ctx: click.Context) -> ImageStore:
    """The local image store ($SERVIN_IMAGE_STORE, default <trust dir>/images)."""
    import os

    from trustkit.registry.image_store import IMAGE_STORE_ENV, ImageStore, default_store_path

    settings = services_from(ctx).settings
    return ImageStore(default_store_path(settings, os.environ.get(IMAGE_STORE_ENV)))


@click.command()
@click.argument("src", type=IMAGE)
@click.argument("dest", type=IMAGE, required=False)
@content_trust_option
@click.option(
    "--sign", "force_sign", is_flag=True, help="Sign the tag even if SERVIN_CONTENT_TRUST is off."
)
@click.option(
    "--all-tags",
    "-a",
    "all_tags",
    is_flag=True,
    help="Push every local tag of the repository SRC (from the local image store).",
)
@click.option(
    "--scan",
    is_flag=True,
    help="Scan the source and attest the report to the pushed digest (policy judges it before "
    "the upload).",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="With --scan: the report to attest (default: run the scanner command).",
)
@click.option(
    "--scanner",
    "scanner_command",
    default=None,
    help='With --scan: scanner command (default $SERVIN_SCANNER), e.g. "trivy image -f json".',
)
@click.option("--scan-key", default=None, help="With --scan: scanner key name.")
@policy_option
@output_options
@quiet_option
@click.pass_context
def push(
    ctx: click.Context,
    src: str,
    dest: str | None,
    disable_content_trust: bool,
    force_sign: bool,
    all_tags: bool,
    scan: bool,
    report: Path | None,
    scanner_command: str | None,
    scan_key: str | None,
    policy_files: tuple[Path, ...],
    output: str | None,
    quiet: bool,
) -> None:
    """Push an image; with content trust on (or --sign), sign its tag.

    \b
    trustkit push REF               REF from the local image store to its registry
    trustkit push --all-tags REPO   every local tag of REPO
    trustkit push SRC DEST          SRC (oci:PATH[:TAG] or IMAGE) copied to DEST

    Multi-arch images (an index and every platform) are copied whole. Everything that can refuse
    the push (policy, the scanner, the signing keys) is checked before the first blob is
    uploaded; the tag is written last, so a refused push leaves the registry's tags unchanged.
    """
    from trustkit.errors import BadInputError, TrustkitError

    as_json = wants_json(ctx, output)
    if force_sign and disable_content_trust:
        raise BadInputError("--sign and --disable-content-trust contradict each other")
    if (report or scanner_command or scan_key) and not scan:
        raise BadInputError("--report, --scanner and --scan-key go with --scan")
    services = services_from(ctx)
    sign = force_sign or (services.settings.content_trust and not disable_content_trust)
    jobs: list[tuple[str | ImageLocation, str]]
    if dest is not None:
        if all_tags:
            raise BadInputError("--all-tags pushes local images: give only the repository")
        jobs = [(src, dest)]
    else:
        if src.startswith("oci:"):
            raise BadInputError(f"push {src} needs a DEST (an OCI layout has no registry name)")
        store = image_store(ctx)
        names = store.tags_of(src) if all_tags else [store.existing(src).reference or src]
        if not names:
            raise BadInputError(f"no local tags of {src} in {store.path}")
        jobs = [(store.existing(name), name) for name in names]
    results: list[dict[str, Any]] = []
    for source, target in jobs:
        shown = source if isinstance(source, str) else target
        try:
            with transfer_progress("Push", quiet=quiet, as_json=as_json):
                result = _push_one(
                    ctx, source, target, sign, scan, report, scanner_command, scan_key, policy_files
                )
        except TrustkitError as exc:
            if as_json:  # the verdict goes to stdout on refusal too; the one line to stderr
                refusal = refusal_document(exc, source=shown, destination=target, signed=False)
                echo_json([*results, refusal] if all_tags else refusal)
            raise
        if as_json:
            results.append(result.to_dict())
        else:
            _print_push(result, sign)
    if as_json:
        echo_json(results if all_tags else results[0])


def _push_one(
    ctx: click.Context,
    src: str | ImageLocation,
    dest: str,
    sign: bool,
    scan: bool,
    report: Path | None,
    scanner_command: str | None,
    scan_key: str | None,
    policy_files: tuple[Path, ...],
) -> PushResult:
    from trustkit.errors import BadInputError
    from trustkit.pipeline.flows import push_gate, push_image

    services = services_from(ctx)
    gate = None
    if not dest.startswith("oci:"):
        gate = push_gate(
            services,
            dest,
            policy_files=policy_files,
            scan=scan,
            report=report,
            scanner_command=scanner_command,
            scanner_key=scan_key,
            sign=sign,
        )
    elif scan:
        raise BadInputError("--scan attests images pushed to a registry; DEST is an OCI layout")
    result = push_image(services, src, dest, sign=sign, gate=gate)
    _print_warnings(result.verdict)
    return result


def _print_push(result: PushResult, sign: bool) -> None:
    d = result.descriptor
    click.echo(f"{result.destination}: digest: {d.digest} size: {d.size}")
    attestation = result.verdict.details.get("attestation") if result.verdict else None
    if isinstance(attestation, dict):
        counts = ", ".join(f"{n} {s}" for s, n in attestation["counts"].items() if n)
        click.echo(
            f"Attested {attestation['scanner']} scan ({counts or 'no findings'}) "
            f"signed by {str(attestation['signer'])[:12]} ({attestation['tag']})"
        )
    if result.pending is not None:
        from trustkit.cli.trust_pending import report_pending
        from trustkit.refs import parse

        report_pending(parse(result.destination).repository, result.pending)
    elif result.signed_roles:
        click.echo(f"Signed {result.destination} in {', '.join(result.signed_roles)}")
    elif not sign:
        click.echo("Content trust off: the tag was not signed")


@click.command()
@click.argument("ref", type=IMAGE)
@click.option(
    "--dest",
    default=None,
    metavar="oci:DIR[:TAG]",
    help="Store the verified image in this OCI layout (default: the local image store).",
)
@click.option(
    "--no-store", is_flag=True, help="Only verify: store the image nowhere (the former default)."
)
@content_trust_option
@policy_option
@output_options
@quiet_option
@click.pass_context
def pull(
    ctx: click.Context,
    ref: str,
    dest: str | None,
    no_store: bool,
    disable_content_trust: bool,
    policy_files: tuple[Path, ...],
    output: str | None,
    quiet: bool,
) -> None:
    """Fetch REF and check every byte; with content trust on, its tag must be signed. The image
    goes into the local image store under REF (or --dest; --no-store to only verify).

    The pipeline decides first (trust, attestations, policy); a refused image is not fetched.
    """
    from trustkit.pipeline.flows import pull_checked

    as_json = wants_json(ctx, output)
    services = services_from(ctx)
    verify = services.settings.content_trust and not disable_content_trust
    from trustkit.errors import BadInputError

    if dest is not None and no_store:
        raise BadInputError("--dest and --no-store contradict each other")
    target: str | ImageLocation | None = dest
    if dest is None and not no_store and not ref.startswith("oci:"):
        from trustkit.refs import parse

        if parse(ref).tag is not None:  # the store names images by tag; a digest only verifies
            target = image_store(ctx).location(ref)
    with (
        refused_as_json(as_json, reference=ref, verified=False),
        transfer_progress("Pull", quiet=quiet, as_json=as_json),
    ):
        verdict, result = pull_checked(
            services, ref, dest=target, verify=verify, policy_files=policy_files
        )
    if verdict is not None:
        _print_warnings(verdict)
    if as_json:
        out = result.to_dict()
        if verdict is not None:
            out["verdict"] = verdict.to_dict()
        echo_json(out)
        return
    d = result.descriptor
    click.echo(f"{result.ref}: digest: {d.digest} size: {d.size}")
    if result.trusted is not None:
        signers = ", ".join(result.trusted.signers) or result.trusted.role
        click.echo(f"Verified: signed by {signers}")
    elif not verify:
        click.echo("Content trust off: the tag was not verified")
    if result.dest:
        click.echo(f"Stored in {result.dest}")
