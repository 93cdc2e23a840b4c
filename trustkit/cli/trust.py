"""``trustkit trust``: Docker Content Trust's commands over trustkit's collections.

Only parsing and printing here; the engine lives in ``trustkit.collections``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trustkit.cli._common import (
    IMAGE,
    echo_json,
    output_options,
    refusal_document,
    refused_as_json,
    services_from,
    wants_json,
)
from trustkit.errors import (
    BadInputError,
    NotSignedError,
    TrustEnvironmentError,
    TrustkitError,
    UnknownRepositoryError,
)
from trustkit.refs import ImageRef, parse, parse_repository
from trustkit.services import Services

if TYPE_CHECKING:
    from trustkit.collections.engine import RemovalResult

ROTATABLE = ("root", "targets", "snapshot", "timestamp")
MAX_PUBLIC_KEY_FILE = 64 * 1024


#: subcommands in their own modules: name -> (module, attribute)
_LAZY_COMMANDS = {
    "key": ("trustkit.cli.trust_keys", "key"),
    "pending": ("trustkit.cli.trust_pending", "pending"),
    "approve": ("trustkit.cli.trust_pending", "approve"),
    "migrate": ("trustkit.cli.trust_migrate", "migrate_cmd"),
}


class _TrustGroup(click.Group):
    """``trust``, whose key, pending, approve and migrate subcommands are imported on first
    use: a ``trust verify`` or ``trust sign`` loads none of their modules."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in _LAZY_COMMANDS:
            return found
        import importlib

        module_name, attr = _LAZY_COMMANDS[cmd_name]
        command: object = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        if isinstance(command, click.Group) and "rotate" not in command.commands:
            command.add_command(rotate)  # `trust key rotate` lives here, with the collections
        self.add_command(command, cmd_name)
        return command


@click.group("trust", cls=_TrustGroup)
def trust() -> None:
    """Manage trusted collections: signers, signatures, keys and verification."""


# --- helpers ------------------------------------------------------------------------------
def _repository(text: str) -> ImageRef:
    """A REPO argument: a repository name, without tag or digest."""
    return parse_repository(text)


def _tagged(text: str) -> ImageRef:
    """An IMAGE:TAG argument (a tag is required; docker would otherwise sign 'latest' silently)."""
    ref = parse(text, default_tag=False)
    if ref.tag is None:
        raise BadInputError(f"{text!r} has no tag: use IMAGE:TAG")
    return ref


def _resolve_digest(services: Services, ref: ImageRef) -> tuple[str, int]:
    """The manifest digest and size of ``ref`` from its registry, when not given on the command
    line: the manifest bytes are fetched and hashed, never the registry's digest header."""
    from trustkit.registry import resolve_digest

    descriptor = resolve_digest(services.registries, ref)
    return descriptor.digest, descriptor.size


def _read_public_key(path: Path) -> Any:
    from trustkit._fs import read_protected
    from trustkit.keys import load_public_key

    try:  # a key that decides trust: nobody else may have written the file
        data = read_protected(path, MAX_PUBLIC_KEY_FILE, what="public key file")
    except FileNotFoundError:
        raise BadInputError(f"public key file {path} does not exist") from None
    return load_public_key(data)


# --- signers ------------------------------------------------------------------------------
@trust.group("signer")
def signer() -> None:
    """Add or remove signers (delegations) of repositories."""


@signer.command("add")
@click.option(
    "--key",
    "key_files",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The signer's public key or certificate (PEM); repeatable.",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    default=None,
    help="How many releases signers must sign a tag (default: unchanged, 1 for a new one).",
)
@click.argument("name")
@click.argument("repositories", metavar="REPO...", nargs=-1, required=True, type=IMAGE)
@output_options
@click.pass_context
def signer_add(
    ctx: click.Context,
    key_files: tuple[Path, ...],
    threshold: int | None,
    name: str,
    repositories: tuple[str, ...],
    output: str | None,
) -> None:
    """Add signer NAME with its keys to each REPO (creating the repository's trust data)."""
    from trustkit.collections import add_signer
    from trustkit.collections.model import check_signer_name

    as_json = wants_json(ctx, output)
    done: list[dict[str, Any]] = []
    with refused_as_json(
        as_json, signer=name, added=False, repository=None, repositories=done
    ) as refusal:
        check_signer_name(name)
        refs = [_repository(r) for r in repositories]
        keys = [_read_public_key(p) for p in key_files]
        services = services_from(ctx)
        for ref in refs:
            refusal["repository"] = ref.repository
            click.echo(f'Adding signer "{name}" to {ref.repository}...', err=True)
            change = add_signer(services, ref.gun, name, keys, threshold=threshold)
            for warning in change.warnings:
                click.echo(f"warning: {ref.repository}: {warning}", err=True)
            done.append({"repository": ref.repository, "warnings": list(change.warnings)})
            if not as_json:
                click.echo(f"Successfully added signer: {name} to {ref.repository}")
    if as_json:
        echo_json({"signer": name, "added": True, "repositories": done})


@signer.command("remove")
@click.option(
    "--force",
    "-f",
    is_flag=True,
    help="Remove even the last signer, or where remaining signatures would keep covering tags "
    "only this signer vouched for (revoke those afterwards).",
)
@click.argument("name")
@click.argument("repositories", metavar="REPO...", nargs=-1, required=True, type=IMAGE)
@output_options
@click.pass_context
def signer_remove(
    ctx: click.Context,
    force: bool,
    name: str,
    repositories: tuple[str, ...],
    output: str | None,
) -> None:
    """Remove signer NAME from each REPO."""
    from trustkit.collections import remove_signer
    from trustkit.collections.model import check_signer_name

    as_json = wants_json(ctx, output)
    done: list[dict[str, Any]] = []
    with refused_as_json(
        as_json, signer=name, removed=False, repository=None, repositories=done
    ) as refusal:
        check_signer_name(name)
        refs = [_repository(r) for r in repositories]
        services = services_from(ctx)
        for ref in refs:
            refusal["repository"] = ref.repository
            click.echo(f'Removing signer "{name}" from {ref.repository}...', err=True)
            result = remove_signer(services, ref.gun, name, force=force)
            for warning in result.warnings:
                click.echo(f"warning: {ref.repository}: {warning}", err=True)
            done.append(
                {
                    "repository": ref.repository,
                    "warnings": list(result.warnings),
                    # removing a signer is the answer to a stolen key: what no longer counts
                    "untrusted_tags": [
                        {
                            "tag": lost.tag,
                            "digest": lost.digest,
                            "size": lost.size,
                            "signed_only_by_removed": not lost.vouched_by_remaining,
                        }
                        for lost in result.untrusted
                    ],
                }
            )
            if not as_json:
                _print_removed(ref, name, result)
    if as_json:
        echo_json({"signer": name, "removed": True, "repositories": done})


def _print_removed(ref: ImageRef, name: str, result: RemovalResult) -> None:
    click.echo(f"Successfully removed {name} from {ref.repository}")
    if result.untrusted:
        # removing a signer is the answer to a stolen key: say what no longer counts
        click.echo(f"These tags of {ref.repository} are no longer trusted:")
        for lost in result.untrusted:
            origin = "" if lost.vouched_by_remaining else f" (signed only by {name})"
            click.echo(f"  {lost.tag} {lost.digest}{origin}")
        click.echo("To keep one, check its digest and sign it again:")
        for lost in result.untrusted:
            click.echo(
                f"  trustkit trust sign {ref.repository}:{lost.tag} "
                f"--digest {lost.digest} --size {lost.size}"
            )


# --- signatures ---------------------------------------------------------------------------
@trust.command("sign")
@click.argument("image", metavar="IMAGE:TAG | REPO", type=IMAGE)
@click.option("--digest", default=None, help="Manifest digest to sign (sha256:<hex>).")
@click.option("--size", type=click.IntRange(min=0), default=None, help="Manifest size in bytes.")
@click.option(
    "--force",
    is_flag=True,
    help="Without --digest: sign what the registry serves even when the tag is signed at "
    "another digest.",
)
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default=None,
    help="Sign every 'TAG sha256:<hex> SIZE' line of this file ('-': standard input) into "
    "REPO in one publish; one malformed line refuses the whole file.",
)
@click.option(
    "--all-tags",
    is_flag=True,
    help="Sign every tag the registry holds for REPO, at the digest it serves, in one publish.",
)
@output_options
@click.pass_context
def sign(
    ctx: click.Context,
    image: str,
    digest: str | None,
    size: int | None,
    force: bool,
    from_file: Path | None,
    all_tags: bool,
    output: str | None,
) -> None:
    """Sign IMAGE:TAG: record its manifest digest in every role your keys can sign.

    Without --digest the registry's current manifest is signed: its digest and size are
    printed, and a tag already signed at another digest is refused unless --force.

    With --from-file or --all-tags, REPO names a repository and many tags are signed in one
    publish (also how tags are signed again after a signer key was lost and removed).

    When a role's threshold needs other signers' keys, nothing is published: the change waits
    as a pending change for them to approve (see `trust pending` and `trust approve`)."""
    as_json = wants_json(ctx, output)
    with refused_as_json(as_json, reference=image, signed=False):
        _sign(ctx, image, digest, size, force, from_file, all_tags, as_json)


def _sign(
    ctx: click.Context,
    image: str,
    digest: str | None,
    size: int | None,
    force: bool,
    from_file: Path | None,
    all_tags: bool,
    as_json: bool,
) -> None:
    if from_file is not None or all_tags:
        if digest is not None or size is not None:
            raise BadInputError("--digest and --size sign one tag: not with --from-file/--all-tags")
        _sign_many(ctx, image, from_file, all_tags, as_json)
        return
    ref = _tagged(image)
    services = services_from(ctx)
    _unlock_ahead(services)
    from trustkit.collections import sign_or_propose

    from_registry = digest is None and size is None
    if digest is None or size is None:
        if digest is not None or size is not None:
            raise BadInputError("pass both --digest and --size")
        digest, size = _resolve_digest(services, ref)
        click.echo(
            f"Signing {ref.familiar} at {digest} (size {size}), as the registry serves it",
            err=as_json,  # stdout is the JSON document's alone
        )
        if not force:
            _refuse_moving_signed_tag(services, ref, digest)
    click.echo(f"Signing and pushing trust data for {ref.familiar}...", err=True)
    outcome = sign_or_propose(services, ref, digest=digest, size=size)
    if as_json:
        doc: dict[str, Any] = {
            "reference": str(ref),
            "digest": digest,
            "size": size,
            "signed": outcome.pending is None,
            "roles": list(outcome.roles),
        }
        if outcome.pending is not None:
            doc["pending"] = outcome.pending.to_json()
        echo_json(doc)
    if outcome.pending is not None:
        if as_json:
            return
        from trustkit.cli.trust_pending import report_pending

        report_pending(ref.repository, outcome.pending)
        return
    if from_registry and "cosign" in services.settings.signature_formats:
        # the registry holds what was signed: sign it for cosign and skopeo too (docs/signatures.md)
        from trustkit.pipeline.flows import write_cosign_signatures
        from trustkit.registry.model import Descriptor

        write_cosign_signatures(services, ref, Descriptor("", digest, size))
    if not as_json:
        click.echo(f"Successfully signed {ref.repository}:{ref.tag} ({', '.join(outcome.roles)})")


def _sign_many(
    ctx: click.Context, repository: str, from_file: Path | None, all_tags: bool, as_json: bool
) -> None:
    """``trust sign REPO --from-file FILE`` / ``--all-tags``: one publish for every tag."""
    from trustkit.collections.bulk import read_sign_file, registry_entries, sign_many_or_propose

    if from_file is not None and all_tags:
        raise BadInputError("choose one of --from-file and --all-tags")
    ref = _repository(repository)
    # the file is checked whole before the store or the registry is touched
    entries = read_sign_file(from_file) if from_file is not None else None
    services = services_from(ctx)
    _unlock_ahead(services)
    if entries is None:
        entries = registry_entries(services.registries, ref.repository)
    click.echo(f"Signing {len(entries)} tag(s) of {ref.repository} in one publish...", err=True)
    outcome = sign_many_or_propose(services, ref.gun, entries)
    if as_json:
        doc: dict[str, Any] = {
            "repository": ref.repository,
            "tags": len(entries),
            "signed": outcome.pending is None,
            "roles": list(outcome.roles),
        }
        if outcome.pending is not None:
            doc["pending"] = outcome.pending.to_json()
        echo_json(doc)
        return
    if outcome.pending is not None:
        from trustkit.cli.trust_pending import report_pending

        report_pending(ref.repository, outcome.pending)
        return
    click.echo(
        f"Successfully signed {len(entries)} tag(s) of {ref.repository} "
        f"({', '.join(outcome.roles)})"
    )


def _unlock_ahead(services: Services) -> None:
    """The one key derivation of a publish (every key but root's is under the repository
    passphrase) starts now, on the other core, while python-tuf, the key store and the
    collection load (ADR 0012)."""
    from trustkit.keys.wrap import unlock_ahead

    settings = services.settings
    unlock_ahead(settings.private_dir, settings.repository_passphrase)


def _refuse_moving_signed_tag(services: Services, ref: ImageRef, digest: str) -> None:
    """A tag the registry now serves at another digest than the signed one may have been
    overwritten by whoever can push: re-signing it must be a decision, not a side effect."""
    from trustkit.collections import verify_tag
    from trustkit.errors import NotSignedError, TagMovedError, UnknownRepositoryError

    try:
        signed = verify_tag(services, ref)
    except (NotSignedError, UnknownRepositoryError):
        return
    if signed.digest != digest:
        raise TagMovedError(
            f"{ref.familiar} is signed at {signed.digest}, but the registry now serves {digest}",
            hint="pass --digest to sign a digest you checked, or --force to sign what the "
            "registry serves",
        )


@trust.command("revoke")
@click.argument("image", metavar="IMAGE[:TAG]", type=IMAGE)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before revoking every tag.")
@output_options
@click.pass_context
def revoke_cmd(ctx: click.Context, image: str, yes: bool, output: str | None) -> None:
    """Remove the signature of one tag, or of every tag of IMAGE (a pending change when other
    signers must co-sign it)."""
    as_json = wants_json(ctx, output)
    with refused_as_json(as_json, reference=image, revoked=False):
        doc = _revoke(ctx, image, yes, as_json)
    if as_json:
        echo_json(doc)


def _revoke(ctx: click.Context, image: str, yes: bool, as_json: bool) -> dict[str, Any]:
    """Revoke, print the plain-text outcome unless ``as_json``, and return the JSON one."""
    from trustkit.collections import revoke_or_propose

    ref = parse(image, default_tag=False)
    if ref.digest is not None:
        raise BadInputError("revoke takes IMAGE or IMAGE:TAG, not a digest")
    if ref.tag is None and not yes:
        import sys

        if not sys.stdin.isatty():
            raise BadInputError(
                f"revoking every tag of {ref.repository} needs confirmation",
                hint="pass --yes, or name one tag: IMAGE:TAG",
            )
        click.confirm(
            f"Revoke the signatures of every tag of {ref.repository}?", abort=True, err=True
        )
    doc: dict[str, Any] = {"reference": str(ref), "repository": ref.repository, "tag": ref.tag}
    services = services_from(ctx)
    cosign = ref.tag is not None and "cosign" in services.settings.signature_formats
    if cosign:  # looked up while the collection still names the tag's digest
        from trustkit.sources.cosign import remove_signatures, revocation_digests

        cosign_digests = revocation_digests(services, ref)
    try:
        outcome = revoke_or_propose(services, ref)
    except (NotSignedError, UnknownRepositoryError):
        if not (cosign and cosign_digests):
            raise
        # already revoked in the trust data: a run that could not reach the registry before
        # finishes the job by removing the cosign signatures left behind
        removed = sum(remove_signatures(services, ref, d) for d in cosign_digests)
        if not as_json:
            click.echo(
                f"{ref.familiar} is not signed in the trust data; "
                f"removed {removed} cosign signature(s)"
            )
        return {**doc, "revoked": True, "roles": [], "cosign_signatures_removed": removed}
    removed = 0
    if cosign and outcome.pending is None:
        try:
            for digest in cosign_digests:
                removed += remove_signatures(services, ref, digest)
        except TrustEnvironmentError as exc:
            raise TrustEnvironmentError(
                f"revoked {ref.familiar} in the trust data, but its cosign signature could not "
                f"be removed: {exc}",
                hint=f"cosign verifiers accept it until then: run trustkit trust revoke "
                f"{ref.familiar} again when the registry answers",
            ) from exc
    doc.update(
        revoked=outcome.pending is None,
        roles=list(outcome.roles),
        cosign_signatures_removed=removed,
    )
    if outcome.pending is not None:
        doc["pending"] = outcome.pending.to_json()
        if not as_json:
            from trustkit.cli.trust_pending import report_pending

            report_pending(ref.repository, outcome.pending)
        return doc
    if not as_json:
        what = f"tag {ref.tag}" if ref.tag else "all tags"
        click.echo(f"Successfully revoked {what} of {ref.repository} ({', '.join(outcome.roles)})")
    return doc


@trust.command("verify")
@click.argument("image", metavar="IMAGE[:TAG]", type=IMAGE)
@click.option(
    "--root-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Trust this root.json instead of trusting the store's first root on first use.",
)
@output_options
@click.pass_context
def verify(ctx: click.Context, image: str, root_file: Path | None, output: str | None) -> None:
    """Verify IMAGE:TAG (default tag latest) and print its trusted sha256 digest."""
    # a verified answer the client cache already holds is checked without python-tuf (ADR 0017)
    from trustkit.collections.warm import verify_tag
    from trustkit.errors import NotSignedError, UnknownRepositoryError

    ref = parse(image)
    if ref.digest is not None and ref.tag is None:
        raise BadInputError("verify takes IMAGE:TAG, not a digest")
    as_json = wants_json(ctx, output)
    with refused_as_json(as_json, reference=str(ref), verified=False):
        try:
            target = verify_tag(services_from(ctx), ref, root_file=root_file)
        except UnknownRepositoryError as exc:  # never signed: "not trusted" (exit 1), as pull
            raise NotSignedError(f"{ref.familiar} is not signed: {exc}") from exc
    if as_json:
        echo_json(
            {
                "reference": str(ref),
                "verified": True,
                "digest": target.digest,
                "size": target.size,
                "role": target.role,
                "signers": list(target.signers),
            }
        )
        return
    click.echo(target.digest)


@trust.command("inspect")
@click.argument("images", metavar="IMAGE[:TAG]...", nargs=-1, required=True, type=IMAGE)
@click.option("--pretty", is_flag=True, help="Human-readable tables instead of JSON.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default=None,
    help="table is --pretty; json (the default) is docker's document.",
)
@click.pass_context
def inspect_cmd(
    ctx: click.Context, images: tuple[str, ...], pretty: bool, output: str | None
) -> None:
    """Show the signed tags, signers and administrative keys of each IMAGE (verified)."""
    from trustkit.collections import inspect
    from trustkit.errors import NotSignedError, UnknownRepositoryError

    refs = [parse(i, default_tag=False) for i in images]
    services = services_from(ctx)
    reports = []
    missing = []
    for ref in refs:  # as docker: an unknown repository is reported, the others still shown
        try:
            reports.append(inspect(services, ref))
        except UnknownRepositoryError:
            missing.append(ref.familiar)
            click.echo(f"trustkit: no signatures or cannot access {ref.familiar}", err=True)
    if pretty or output == "table":
        _print_pretty(reports)
    else:
        echo_json(reports)
    if missing:
        raise NotSignedError(f"no trust data for {', '.join(missing)}")


def _print_pretty(reports: list[dict[str, Any]]) -> None:
    import os

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = 250  # never truncate digests in pipes and logs
    for report in reports:
        name = report["Name"]
        # titles on their own lines, as docker prints them: a table title wraps to the table
        if report["SignedTags"]:
            console.print(f"Signatures for {name}")
            console.print()
            tags = report["SignedTags"]
            tag_width = max(len("SIGNED TAG"), *(len(t["SignedTag"]) for t in tags))
            digest_width = max(len(t["Digest"]) for t in tags)
            if tag_width + digest_width + len("SIGNERS") + 4 > console.width:
                # the digest (what is copied) never cut: one tag per block when it cannot fit
                for tag in tags:
                    console.print(tag["SignedTag"], soft_wrap=True)
                    console.print(f"  {tag['Digest']}", soft_wrap=True)
                    console.print(f"  signed by {', '.join(tag['Signers'])}", soft_wrap=True)
            else:
                table = Table(box=None)
                table.add_column("SIGNED TAG", no_wrap=True, min_width=tag_width)
                table.add_column("DIGEST", no_wrap=True, min_width=digest_width)
                table.add_column("SIGNERS", overflow="fold")  # names wrap, never cut
                for tag in tags:
                    table.add_row(tag["SignedTag"], tag["Digest"], ", ".join(tag["Signers"]))
                console.print(table)
        else:
            console.print(f"No signatures for {name}")
        console.print()
        if report["Signers"]:
            console.print(f"List of signers and their keys for {name}")
            console.print()
            table = Table(box=None)
            widest = max(len(e["Name"]) for e in report["Signers"])
            table.add_column("SIGNER", no_wrap=True, min_width=widest)
            table.add_column("KEYS", overflow="fold")
            for signer_entry in report["Signers"]:
                ids = ", ".join(k["ID"][:12] for k in signer_entry["Keys"])
                table.add_row(signer_entry["Name"], ids)
            console.print(table)
            console.print()
        console.print(f"Administrative keys for {name}")
        console.print()
        for admin in sorted(report["AdministrativeKeys"], key=lambda a: a["Name"] != "Repository"):
            ids = ", ".join(k["ID"] for k in admin["Keys"])
            console.print(f"  {admin['Name']} Key:\t{ids}")
        console.print()
        if report.get("Expires"):
            _print_expiry(console, name, report["Expires"])


def _print_expiry(console: Any, name: str, expires: dict[str, str]) -> None:
    from datetime import UTC, datetime

    from rich.table import Table

    now = datetime.now(UTC)
    console.print(f"Expiry dates for {name}")
    console.print()
    table = Table(box=None)
    for column in ("ROLE", "EXPIRES", "IN"):
        table.add_column(column, no_wrap=True)
    for role, text in sorted(expires.items(), key=lambda item: item[1]):
        left = datetime.fromisoformat(text.replace("Z", "+00:00")) - now
        days = left.total_seconds() / 86_400
        table.add_row(role, text, "expired" if days < 0 else f"{days:.1f} days")
    console.print(table)
    console.print()


# --- keys ---------------------------------------------------------------------------------
@click.command("rotate")
@click.argument("repository", metavar="REPO", type=IMAGE)
@click.option(
    "--role",
    type=click.Choice(ROTATABLE),
    default="targets",
    show_default=True,
    help="Which role's key to replace.",
)
@click.option(
    "--key",
    "key_name",
    default=None,
    metavar="NAME",
    help="Move the role onto this key of the key store (e.g. an HSM or KMS key imported with "
    "'trust key import-uri') instead of a new one.",
)
@click.pass_context
def rotate(ctx: click.Context, repository: str, role: str, key_name: str | None) -> None:
    """Replace a role's key of REPO with a new one (a new root is signed by old and new)."""
    from trustkit.cli.trust_keys import named_key
    from trustkit.collections import rotate_key

    ref = _repository(repository)
    services = services_from(ctx)
    chosen = named_key(services.keys, key_name, role) if key_name is not None else None
    record = rotate_key(services, ref.gun, role, key=chosen)
    click.echo(f"Successfully rotated the {role} key of {ref.repository}", err=True)
    from trustkit.cli.trust_keys import _shown_keyid

    click.echo(_shown_keyid(services.settings, record))  # notary's id on a notary-server


@trust.command("renew")
@click.argument("repositories", metavar="[REPO]...", nargs=-1, type=IMAGE)
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice([*ROTATABLE, "releases"]),
    help="Also renew this role (repeatable). Snapshot and timestamp are always renewed.",
)
@click.option(
    "--expiring-within",
    "window",
    metavar="DURATION",
    default=None,
    help="Only renew what expires within DURATION (30m, 12h, 3d, 2w): every role due, in each "
    "REPO or, without REPO, in every collection this machine holds keys for or has verified.",
)
@output_options
@click.pass_context
def renew_cmd(
    ctx: click.Context,
    repositories: tuple[str, ...],
    roles: tuple[str, ...],
    window: str | None,
    output: str | None,
) -> None:
    """Re-sign REPO's metadata with fresh expiry dates (works on expired metadata too)."""
    as_json = wants_json(ctx, output)
    doc: dict[str, Any] = {"renewed": [], "fresh": [], "not_renewable": [], "failed": []}
    with refused_as_json(as_json, **doc):  # the same lists, filled as far as it got
        failed = _renew(ctx, repositories, roles, window, as_json, doc)
    if as_json:
        if failed:  # each failure named; the exit code is the worst of them, as in plain text
            worst = max(failed.values(), key=lambda error: error.exit_code)
            doc = refusal_document(worst, **doc)
        echo_json(doc)
    if failed:
        ctx.exit(max(error.exit_code for error in failed.values()))


def _renew(
    ctx: click.Context,
    repositories: tuple[str, ...],
    roles: tuple[str, ...],
    window: str | None,
    as_json: bool,
    doc: dict[str, Any],
) -> dict[str, TrustkitError]:
    """Renew, filling ``doc`` (the JSON outcome) as it goes; plain text unless ``as_json``.
    Returns the collections that failed when several were renewed."""
    from trustkit.collections import RELEASES, parse_duration, renew, renew_expiring

    if not repositories and window is None:
        raise BadInputError("name at least one REPO, or pass --expiring-within DURATION")
    services = services_from(ctx)
    # each collection as the user named it (as before: the repository, not its GUN)
    named = {ref.gun: ref.repository for ref in map(_repository, repositories)}
    guns = list(named)
    failed: dict[str, TrustkitError] = {}

    def renewed_one(gun: str, renewed: list[str]) -> None:
        doc["renewed"].append({"repository": named.get(gun, gun), "roles": list(renewed)})
        if not as_json:
            click.echo(f"Renewed {', '.join(renewed)} of {named.get(gun, gun)}")

    if window is not None:
        report = renew_expiring(services, parse_duration(window), guns or None)
        for gun, renewed in report.renewed.items():
            renewed_one(gun, renewed)
        for gun in report.fresh:
            doc["fresh"].append(named.get(gun, gun))
            click.echo(f"{named.get(gun, gun)}: nothing expires within {window}", err=True)
        for gun, why in report.not_ours.items():
            doc["not_renewable"].append({"repository": gun, "reason": why.one_line()})
            click.echo(f"{gun}: due, but not renewable here: {why.one_line()}", err=True)
        failed = report.failed
    else:
        wanted = [RELEASES if r == "releases" else r for r in roles]
        for gun in guns:
            try:
                renewed = renew(services, gun, wanted)
            except TrustkitError as exc:
                if len(guns) == 1:
                    raise
                failed[gun] = exc
                continue
            renewed_one(gun, renewed)
    for gun, error in failed.items():
        entry = refusal_document(error, repository=named.get(gun, gun))
        doc["failed"].append({"repository": entry["repository"], "error": entry["error"]})
        click.echo(f"trustkit: {named.get(gun, gun)}: {error.one_line()}", err=True)
    return failed


@trust.command("layout")
@click.argument("repository", metavar="REPO", type=IMAGE)
@click.argument("layout", type=click.Choice(["bins"]))
@click.option(
    "--bits",
    type=click.IntRange(min=1, max=14),
    default=None,
    help="2**BITS bins per role (default 9: 512 bins, sized for 100,000 tags).",
)
@click.pass_context
def layout_cmd(ctx: click.Context, repository: str, layout: str, bits: int | None) -> None:
    """Move REPO's signed tags onto hashed-bin delegations (TAP 15), in one publish.

    Needs the repository key and each signer role's threshold of keys (its tags are re-signed
    into its bins). Clients keep verifying every tag: they walk to the new version as to any
    other. A collection never moves back."""
    from trustkit.collections.bins import DEFAULT_BITS
    from trustkit.collections.engine import use_bins

    ref = _repository(repository)
    moved = use_bins(services_from(ctx), ref.gun, bits=bits or DEFAULT_BITS)
    click.echo(f"{ref.repository} now uses hashed bins: {moved} signed tag record(s) moved")
