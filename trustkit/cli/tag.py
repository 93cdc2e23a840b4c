"""``trustkit tag SRC DEST``: name a local image (or an OCI layout's image) DEST in the local
image store, as ``servin tag`` does; ``push DEST`` then pushes it."""

from __future__ import annotations

import click

from trustkit.cli._common import IMAGE, services_from


@click.command()
@click.argument("src", type=IMAGE)
@click.argument("dest", type=IMAGE)
@click.pass_context
def tag(ctx: click.Context, src: str, dest: str) -> None:
    """Name SRC (a local image, or oci:PATH[:TAG] to import) DEST in the local image store."""
    from trustkit.cli.images import image_store
    from trustkit.registry import copy_image, open_image_location
    from trustkit.registry.location import LayoutLocation

    store = image_store(ctx)
    if src.startswith("oci:"):  # import: the layout's image and blobs into the store
        source = open_image_location(services_from(ctx).registries, src)
        target = store.location(dest)
        try:
            descriptor = copy_image(source, target)
        finally:
            source.close()
        click.echo(f"Tagged {target.reference} ({descriptor.digest})")
        return
    found: LayoutLocation = store.existing(src)
    name = store.tag(found, dest)
    click.echo(f"Tagged {name} ({found.get_manifest(found.reference).digest})")
