"""Image reference globs with Docker normalisation.

``alpine`` means ``docker.io/library/alpine`` (any tag), ``alpine:3.*`` only its 3.x tags,
``registry.example.com/team/*`` every repository directly under ``team``, ``**`` every image.
``*`` and ``?`` stay inside one path component; ``**`` crosses ``/``. A pattern without a
registry (``team/app``) is a short name: it means docker.io, or the registries a short name on
the command line resolves to (``unqualified_search_registries``, see ``ShortNames``). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustkit import refs
from trustkit.errors import InvalidReferenceError

_MATCH_ALL = {"*", "**"}


def _looks_like_domain(component: str) -> bool:
    """Docker's rule (``refs``): a dot, a port, ``localhost`` or capitals make a domain."""
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.lower() != component
    )


def _component_regex(text: str, *, cross_slash: bool) -> str:
    out: list[str] = []
    i = 0
    one = "." if cross_slash else "[^/]"
    while i < len(text):
        if text.startswith("**", i):
            out.append(".*")
            i += 2
        elif text[i] == "*":
            out.append(f"{one}*")
            i += 1
        elif text[i] == "?":
            out.append(one)
            i += 1
        else:
            out.append(re.escape(text[i]))
            i += 1
    return "".join(out)


def _split_tag_digest(pattern: str) -> tuple[str, str | None, str | None]:
    name, _, digest = pattern.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def _normalise_name(name: str) -> str:
    """Docker's domain rules, applied to a pattern; a leading ``**`` means 'any registry'.

    The domain is spelled as ``refs`` spells it (``LOCALHOST:5000``, ``Docker.io`` and
    ``registry-1.docker.io`` are one registry each), so no spelling falls out of a scope."""
    first, sep, rest = name.partition("/")
    if first.startswith("**"):
        return name
    if not sep or not _looks_like_domain(first):
        domain, remainder = refs.DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
        if not any(c in domain for c in "*?"):
            domain = refs.canonical_domain(domain)
    if domain == refs.DEFAULT_DOMAIN and "/" not in remainder:
        remainder = refs.OFFICIAL_REPO_PREFIX + remainder
    return f"{domain}/{remainder}"


@dataclass(frozen=True)
class ShortNames:
    """Where a short name (no registry) resolves: ``scope`` lists every registry it may mean
    (a scope fails closed), ``exact`` the one it resolves to unambiguously, if any (exclusions,
    waivers and exemptions apply only there). Docker's rule is docker.io for both."""

    scope: tuple[str, ...] = (refs.DEFAULT_DOMAIN,)
    exact: tuple[str, ...] = (refs.DEFAULT_DOMAIN,)

    @classmethod
    def resolving(cls, registries: tuple[str, ...], mode: str) -> ShortNames:
        """The containers-registries.conf semantics ``trustkit.registry.shortnames`` applies
        to command lines: ``disabled`` is Docker's rule, ``enforcing`` refuses an ambiguous
        name, ``permissive`` takes the first registry."""
        search = tuple(dict.fromkeys(refs.canonical_domain(r) for r in registries))
        if mode == "disabled" or not search:
            return cls()
        # a scope also keeps Docker's reading: Kubernetes (the webhook) still means docker.io
        wide = tuple(dict.fromkeys((*search, refs.DEFAULT_DOMAIN)))
        if mode == "enforcing" and len(search) > 1:
            return cls(scope=wide, exact=())
        return cls(scope=wide, exact=search[:1])


DOCKER_RULE = ShortNames()


@dataclass(frozen=True)
class ImageGlob:
    """A compiled pattern. ``text`` is what the user wrote; ``normalised`` is what it matches."""

    text: str
    normalised: str
    repository: re.Pattern[str] | None  # None: every repository
    tag: re.Pattern[str] | None  # None: any tag (or none)
    digest: str | None
    #: for a short name: the path as written, matched under registries other than docker.io
    short_path: re.Pattern[str] | None = None

    @classmethod
    def compile(cls, text: str) -> ImageGlob:
        """Raise ``InvalidReferenceError`` when the pattern could never match a valid reference."""
        if text in _MATCH_ALL:
            return cls(text, "**", None, None, None)
        name, tag, digest = _split_tag_digest(text)
        if not name:
            raise InvalidReferenceError(f"invalid image pattern {text!r}: no repository")
        # A pattern is valid when replacing its wildcards gives a valid reference.
        probe = re.sub(r"\*\*|\*|\?", "x", text)
        try:
            refs.parse(probe)
        except InvalidReferenceError:
            raise InvalidReferenceError(
                f"invalid image pattern {text!r}: not an image reference with wildcards"
            ) from None
        if digest is not None:
            refs.validate_digest(digest)
        normalised_name = _normalise_name(name)
        repo_re = re.compile(_component_regex(normalised_name, cross_slash=False))
        tag_re = re.compile(_component_regex(tag, cross_slash=True)) if tag is not None else None
        normalised = normalised_name
        if tag is not None:
            normalised += f":{tag}"
        if digest is not None:
            normalised += f"@{digest}"
        first, sep, _ = name.partition("/")
        short = None
        if not first.startswith("**") and (not sep or not _looks_like_domain(first)):
            short = re.compile(_component_regex(name, cross_slash=False))
        return cls(text, normalised, repo_re, tag_re, digest, short)

    @property
    def tag_scoped(self) -> bool:
        """Whether the pattern names tags (so a reference's tag must be known to decide)."""
        return self.tag is not None

    def matches(
        self,
        ref: refs.ImageRef,
        digest: str | None = None,
        *,
        unknown_tag: bool = False,
        short_names: tuple[str, ...] = DOCKER_RULE.exact,
    ) -> bool:
        """Whether ``ref`` (whose content is ``digest``, when known) matches.

        ``ref.tag`` None means the tag is unknown: a tag pattern then matches only with
        ``unknown_tag`` (scopes fail closed; exclusions and waivers do not apply). A short-name
        pattern matches under the registries of ``short_names``."""
        if self.repository is not None and not self._repository_matches(ref, short_names):
            return False
        if self.tag is not None:
            if ref.tag is None:
                if not unknown_tag:
                    return False
            elif not self.tag.fullmatch(ref.tag):
                return False
        return self.digest is None or self.digest in (ref.digest, digest)

    def _repository_matches(self, ref: refs.ImageRef, short_names: tuple[str, ...]) -> bool:
        assert self.repository is not None
        if self.short_path is None:
            return self.repository.fullmatch(ref.repository) is not None
        if ref.domain not in short_names:
            return False
        if ref.domain == refs.DEFAULT_DOMAIN:  # Docker's rule adds library/ there
            return self.repository.fullmatch(ref.repository) is not None
        return self.short_path.fullmatch(ref.path) is not None
