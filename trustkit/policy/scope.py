"""Which policies apply to an image: scope follows content, not spelling.

An image is known by the names its content is reachable under: its repository and

- the tag it was asked for, when that is what gets fetched (a reference without a digest);
- every signed tag that points at its digest (the trust evidence's ``tags``), so that
  ``app@sha256:<d>`` is scoped exactly as every ``app:<tag>`` whose signed digest is ``<d>``;
- no tag at all when none is known (a digest no signed tag names, content trust off): then a
  tag-scoped glob is assumed to match in a scope (fail closed) and never in an exclusion or an
  allowlist entry's ``images`` (a waiver needs to know what it waives).

``tag@digest`` is fetched by the digest, so its tag counts only when the trust evidence shows
that tag pointing at that digest. A policy applies when any name is in scope and not excluded;
an allowlist entry waives only when it applies to every name. Domains are compared as
``refs.canonical_domain`` spells them; short-name globs follow ``unqualified_search_registries``
(see ``globs``). Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from trustkit import refs
from trustkit.model import TrustEvidence
from trustkit.policy.globs import DOCKER_RULE, ImageGlob, ShortNames


@dataclass(frozen=True)
class ScopeSubject:
    """The names one image's content is known by, for scope matching."""

    repository: refs.ImageRef  # no tag, no digest
    digest: str | None
    tags: tuple[str, ...]  # empty: no tag is known
    requested: refs.ImageRef  # as asked for (messages name it)
    short_names: ShortNames = DOCKER_RULE

    @classmethod
    def of(
        cls,
        ref: refs.ImageRef,
        digest: str | None,
        trust: TrustEvidence | None = None,
        *,
        known_tags: tuple[str, ...] = (),
        short_names: ShortNames = DOCKER_RULE,
    ) -> ScopeSubject:
        """``known_tags``: tags the caller knows name this content (a push writes its tag)."""
        tags: dict[str, None] = dict.fromkeys(known_tags)
        if ref.tag is not None and ref.digest is None:
            tags[ref.tag] = None  # fetched by that tag
        if trust is not None and trust.verified and (digest is None or trust.digest == digest):
            tags.update(dict.fromkeys(trust.tags))
        repository = refs.ImageRef(ref.domain, ref.path)
        return cls(repository, digest or ref.digest, tuple(tags), ref, short_names)

    @cached_property  # every policy asks; the subject is immutable
    def names(self) -> tuple[refs.ImageRef, ...]:
        base = self.repository
        if not self.tags:
            return (refs.ImageRef(base.domain, base.path, None, self.digest),)
        return tuple(refs.ImageRef(base.domain, base.path, t, self.digest) for t in self.tags)

    @property
    def tag_known(self) -> bool:
        return bool(self.tags)

    def in_scope(self, scope: tuple[ImageGlob, ...], exclude: tuple[ImageGlob, ...]) -> bool:
        """Some name is in ``scope`` (empty: everything) and not excluded."""
        digest = self.digest
        wide, exact = self.short_names.scope, self.short_names.exact
        for name in self.names:
            if scope and not any(
                g.matches(name, digest, unknown_tag=True, short_names=wide) for g in scope
            ):
                continue
            if any(g.matches(name, digest, short_names=exact) for g in exclude):
                continue
            return True
        return False

    def covered_by(self, globs: tuple[ImageGlob, ...]) -> bool:
        """Every name matches one of ``globs`` (empty: everything): what a waiver needs."""
        if not globs:
            return True
        digest, exact = self.digest, self.short_names.exact
        return all(
            any(g.matches(name, digest, short_names=exact) for g in globs) for name in self.names
        )

    def may_be_in_scope(self, scope: tuple[ImageGlob, ...], exclude: tuple[ImageGlob, ...]) -> bool:
        """Before the trust evidence is known: could this content be in scope once its signed
        tags are known? A reference fetched by its tag is scoped by that tag alone."""
        if self.in_scope(scope, exclude):
            return True
        if self.requested.digest is None:
            return False
        base = self.repository
        unknown = refs.ImageRef(base.domain, base.path, None, self.digest)
        wide = self.short_names.scope
        return not scope or any(
            g.matches(unknown, self.digest, unknown_tag=True, short_names=wide) for g in scope
        )
