"""The local image store: one OCI image layout (``$SERVIN_IMAGE_STORE``, default
``<trust dir>/images``) holding images by their full reference, as servin's local images.

Each image is an ``index.json`` entry whose ``org.opencontainers.image.ref.name`` is the
normalised reference (``registry.example.com/team/app:v1``; Docker Hub images as
``docker.io/library/alpine:latest``), so ``trustkit tag``, ``push REF`` and ``pull REF`` name
images the way the servin guide does. Blobs are shared between images.
"""

from __future__ import annotations

from pathlib import Path

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import BadInputError, NotFoundError
from trustkit.registry.layout import OCILayout
from trustkit.registry.location import LayoutLocation

#: the environment variable naming the store (read by the CLI, the entry point)
IMAGE_STORE_ENV = "SERVIN_IMAGE_STORE"


def default_store_path(settings: Settings, override: str | None = None) -> Path:
    return Path(override).expanduser() if override else settings.trust_dir / "images"


def local_name(text: str) -> str:
    """The store's name of an image reference: normalised, a tag (default latest) and no
    digest (a digest names content; the store names images by tag, as servin does)."""
    ref = refs.parse(text)
    if ref.digest is not None and ref.tag is None:
        raise BadInputError(f"{text}: the local store names images by tag, not by digest")
    return str(ref.with_tag(ref.tag or "latest"))


class ImageStore:
    def __init__(self, path: Path) -> None:
        self.layout = OCILayout(path)
        self.path = path

    def location(self, text: str) -> LayoutLocation:
        """Where ``text`` (an image reference) is, or goes, in the store."""
        self.layout.init()
        return LayoutLocation(self.layout, local_name(text))

    def existing(self, text: str) -> LayoutLocation:
        name = local_name(text)
        if name not in self.names():
            raise NotFoundError(
                f"no local image {name} in {self.path}",
                hint="pull it (trustkit pull REF) or name it (trustkit tag oci:DIR:TAG REF)",
            )
        return LayoutLocation(self.layout, name)

    def names(self) -> list[str]:
        if not self.layout.index_path.is_file():
            return []
        return sorted(set(self.layout.tags()))

    def tags_of(self, repository: str) -> list[str]:
        """Every local name of ``repository`` (``--all-tags``)."""
        repo = refs.parse(repository, default_tag=False)
        if repo.tag is not None or repo.digest is not None:
            raise BadInputError(f"--all-tags takes a repository without a tag: {repository}")
        prefix = f"{repo.repository}:"
        return [n for n in self.names() if n.startswith(prefix) and ":" not in n[len(prefix) :]]

    def tag(self, source: LayoutLocation, dest: str) -> str:
        """Name ``source`` (an image of the store) ``dest`` too; returns the new name."""
        top = source.get_manifest(source.reference)
        name = local_name(dest)
        self.layout.put_manifest(name, top.data, top.media_type, top_level=True)
        return name
