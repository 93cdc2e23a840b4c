"""Image references, parsed and normalised exactly as Docker's distribution/reference does.

``alpine`` → ``docker.io/library/alpine:latest``. The trusted collection name (GUN) of an image is
its normalised repository, e.g. ``docker.io/library/alpine``. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustkit.errors import InvalidReferenceError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255
MAX_REFERENCE_LENGTH = 4096  # bound on untrusted input before any regex runs

# The grammar of github.com/distribution/reference (regexp.go), verbatim in spirit.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
# \A...\Z, not ^...$ ($ also matches before a final newline), and re.ASCII: Go's \w is ASCII,
# Python's also matches other scripts' letters and digits ("v١" is no tag Docker accepts)
_REFERENCE_RE = re.compile(rf"\A({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?\Z", re.ASCII)
_ANCHORED_TAG_RE = re.compile(rf"\A{_TAG}\Z", re.ASCII)
_SHA256_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z", re.ASCII)
_IDENTIFIER_RE = re.compile(r"\A[a-f0-9]{64}\Z", re.ASCII)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalised image reference: registry domain, repository path, optional tag and digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The fully qualified repository, e.g. ``docker.io/library/alpine``."""
        return f"{self.domain}/{self.path}"

    @property
    def gun(self) -> str:
        """The Globally Unique Name of the trusted collection: the normalised repository."""
        return self.repository

    @property
    def registry(self) -> str:
        """Host[:port] to talk to (Docker Hub's API lives at registry-1.docker.io)."""
        return self.domain

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """Docker's short form: ``alpine:latest`` for ``docker.io/library/alpine:latest``."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path
            if name.startswith(OFFICIAL_REPO_PREFIX) and name.count("/") == 1:
                name = name[len(OFFICIAL_REPO_PREFIX) :]
        if self.tag is not None:
            name += f":{self.tag}"
        if self.digest is not None:
            name += f"@{self.digest}"
        return name

    def with_tag(self, tag: str) -> ImageRef:
        validate_tag(tag)
        return ImageRef(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> ImageRef:
        validate_digest(digest)
        return ImageRef(self.domain, self.path, self.tag, digest)

    @property
    def reference(self) -> str:
        """What to ask a registry for: the digest when known, else the tag."""
        if self.digest is not None:
            return self.digest
        return self.tag or DEFAULT_TAG


#: other names of Docker Hub that must not take an image out of a policy's scope
DOCKER_HUB_ALIASES = frozenset({LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io"})


def canonical_domain(domain: str) -> str:
    """One spelling per registry: host names are case-insensitive (``LOCALHOST:5000`` is
    ``localhost:5000``) and Docker Hub answers to several names. A first component that is a
    domain only because of its capitals (``Foo/bar``) keeps them: lower-cased, it would read
    as a Docker Hub namespace."""
    lowered = domain.lower()
    if lowered in DOCKER_HUB_ALIASES:
        return DEFAULT_DOMAIN
    if "." in lowered or ":" in lowered or lowered == "localhost":
        return lowered
    return domain


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: the first component is a domain only if it looks like one."""
    first, sep, rest = name.partition("/")
    if not sep or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = canonical_domain(first), rest
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(text: str, *, default_tag: bool = True) -> ImageRef:
    """Parse and normalise an image reference the way ``docker pull`` does.

    With ``default_tag`` a reference with neither tag nor digest gets ``latest``. A tag and a
    digest may appear together (the digest wins when fetching, the tag is kept for display).
    """
    if not isinstance(text, str) or not text:
        raise InvalidReferenceError("invalid reference format: empty image reference")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReferenceError("invalid reference format: reference is too long")
    if _IDENTIFIER_RE.match(text):
        raise InvalidReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    match = _REFERENCE_RE.match(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE_RE.match(_lower_name_only(text)) is not None:
            raise InvalidReferenceError(
                f"invalid reference format: repository name must be lowercase: {text!r}"
            )
        raise InvalidReferenceError(f"invalid reference format: {text!r}")
    name, tag, digest = match.group(1), match.group(2), match.group(3)
    domain, path = _split_domain(name)
    if len(name) > NAME_TOTAL_LENGTH_MAX or len(f"{domain}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReferenceError(
            f"invalid reference format: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    if any(c.isupper() for c in path):
        raise InvalidReferenceError(
            f"invalid reference format: repository name must be lowercase: {text!r}"
        )
    if digest is not None:
        validate_digest(digest)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return ImageRef(domain=domain, path=path, tag=tag, digest=digest)


def _lower_name_only(text: str) -> str:
    """Lower-case the repository part so we can tell 'uppercase' from 'garbage' in errors."""
    head, at, digest = text.partition("@")
    slash = head.rfind("/")
    colon = head.rfind(":")
    if colon > slash:
        return head[:colon].lower() + head[colon:] + at + digest
    return head.lower() + at + digest


def parse_repository(text: str) -> ImageRef:
    """Parse a repository name (no tag, no digest) into an ImageRef with neither set."""
    ref = parse(text, default_tag=False)
    if ref.tag is not None or ref.digest is not None:
        raise InvalidReferenceError(f"expected a repository without tag or digest: {text!r}")
    return ref


def gun_of(text: str) -> str:
    """The collection name for any reference or repository text."""
    return parse(text, default_tag=False).gun


def validate_tag(tag: str) -> str:
    if not _ANCHORED_TAG_RE.match(tag):
        raise InvalidReferenceError(f"invalid tag {tag!r}")
    return tag


def validate_digest(digest: str) -> str:
    """Only sha256 digests are accepted for trust decisions."""
    if not _SHA256_RE.match(digest):
        raise InvalidReferenceError(
            f"invalid digest {digest!r}: expected sha256: followed by 64 lowercase hex characters"
        )
    return digest
