"""``trustkit push`` and ``trustkit pull``: thin wrappers over trustkit.registry.push."""

from __future__ import annotations

import click

from trustkit.cli._common import content_trust_option, echo_json, settings_from


@click.command()
@click.argument("src")
@click.argument("dest")
@content_trust_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def push(
    ctx: click.Context, src: str, dest: str, disable_content_trust: bool, as_json: bool
) -> None:
    """Copy SRC (oci:PATH[:TAG] or IMAGE) to DEST; with content trust on, sign DEST's tag.

    Multi-arch images (an index and every platform) are copied whole.
    """
    from trustkit.registry.push import push_image

    settings = settings_from(ctx)
    sign = settings.content_trust and not disable_content_trust
    result = push_image(settings, src, dest, sign=sign)
    if as_json:
        echo_json(result.to_dict())
        return
    d = result.descriptor
    click.echo(f"{result.destination}: digest: {d.digest} size: {d.size}")
    if result.signed_roles:
        click.echo(f"Signed {result.destination} in {', '.join(result.signed_roles)}")
    elif not sign:
        click.echo("Content trust off: the tag was not signed")


@click.command()
@click.argument("ref")
@click.option(
    "--dest",
    default=None,
    metavar="oci:DIR[:TAG]",
    help="Store the verified image in an OCI layout (default: verify only).",
)
@content_trust_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def pull(
    ctx: click.Context, ref: str, dest: str | None, disable_content_trust: bool, as_json: bool
) -> None:
    """Fetch REF and check every byte; with content trust on, its tag must be signed."""
    from trustkit.registry.push import pull_image

    settings = settings_from(ctx)
    verify = settings.content_trust and not disable_content_trust
    result = pull_image(settings, ref, dest=dest, verify=verify)
    if as_json:
        echo_json(result.to_dict())
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
