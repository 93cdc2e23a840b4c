"""Delegation layouts: where a tag's target lives, decided in one place.

The writer (which roles a tag is written into), the reader (which roles it looks in, in what
order) and co-signing (which roles an approval signs) all ask the collection's layout instead of
assuming role names. Docker Content Trust's layout is the only one today; hashed bins (TAP 15,
``SuccinctRoles``, ``bins.py``) are a second ``DelegationLayout`` chosen by ``layout_for`` from the
delegations themselves, so every caller keeps working unchanged.

Every question takes the tag, because in a binned layout the role depends on the tag's hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from trustkit.collections._tuf import DelegatedRole, Delegations
from trustkit.collections.model import (
    RELEASES,
    ROOT,
    SIGNER_PREFIX,
    TARGETS,
    CanSign,
    SignerRemoval,
    signer_role,
)
from trustkit.errors import BadInputError

if TYPE_CHECKING:
    from trustkit.keys import Key


class DelegationLayout(Protocol):
    """Where tags and signer records live in one collection."""

    name: str

    def lookup_roles(self, delegations: Delegations | None, tag: str) -> list[str]:
        """The roles a reader consults for ``tag``, most trusted first: the first role that
        holds the tag decides (pull semantics)."""
        ...

    def listing_roles(self, delegations: Delegations | None) -> list[str]:
        """Every role that can hold a trusted tag, most trusted first (listing all tags)."""
        ...

    def release_roles(self, delegations: Delegations | None) -> list[str]:
        """The delegated roles whose threshold gates a release (what co-signing waits for)."""
        ...

    def signer_roles(self, delegations: Delegations | None) -> dict[str, str]:
        """Named signers: signer name -> the role recording what that signer signed."""
        ...

    def record_roles(self, delegations: Delegations | None, tag: str) -> dict[str, str]:
        """The named signers' roles that may record ``tag`` (signer name -> role)."""
        ...

    def write_roles(
        self, delegations: Delegations | None, tag: str | None, can_sign: CanSign
    ) -> list[str]:
        """The roles a writer whose keys pass ``can_sign`` writes ``tag`` into (every role a
        tag may go into when ``tag`` is None; empty when none); ``targets`` alone when the
        collection has no delegations."""
        ...

    def add_signer(
        self, delegations: Delegations, name: str, keys: Iterable[Key], threshold: int | None
    ) -> None:
        """Delegate to signer ``name`` with ``keys`` (and let them sign releases)."""
        ...

    def remove_signer(self, delegations: Delegations, name: str, *, force: bool) -> SignerRemoval:
        """Drop signer ``name`` and the keys only it held from every role."""
        ...

    def signer_of(self, role: str) -> str | None:
        """The signer name a role records, or None for release and top-level roles."""
        ...

    def delegator_of(self, role: str) -> str:
        """The role whose delegation ``role`` is verified against (a reader loads it so)."""
        ...


class DctLayout:
    """Docker Content Trust: ``targets/releases`` holds every signer's keys and is what a pull
    trusts (then ``targets``); ``targets/<signer>`` records what each signer signed."""

    name = "dct"

    def lookup_roles(self, delegations: Delegations | None, tag: str) -> list[str]:
        matching = {name for name, _ in _roles_for(delegations, tag)}
        return [RELEASES, TARGETS] if RELEASES in matching else [TARGETS]

    def listing_roles(self, delegations: Delegations | None) -> list[str]:
        return [RELEASES, TARGETS] if RELEASES in _delegated(delegations) else [TARGETS]

    def release_roles(self, delegations: Delegations | None) -> list[str]:
        return [RELEASES] if RELEASES in _delegated(delegations) else []

    def signer_roles(self, delegations: Delegations | None) -> dict[str, str]:
        return {
            name: role
            for role in _delegated(delegations)
            if (name := self.signer_of(role)) is not None
        }

    def record_roles(self, delegations: Delegations | None, tag: str) -> dict[str, str]:
        return {
            name: role
            for role, _ in _roles_for(delegations, tag)
            if (name := self.signer_of(role)) is not None
        }

    def write_roles(
        self, delegations: Delegations | None, tag: str | None, can_sign: CanSign
    ) -> list[str]:
        roles = _delegated(delegations)
        if not roles:
            return [TARGETS]
        names = list(roles) if tag is None else [n for n, _ in _roles_for(delegations, tag)]
        return [name for name in names if can_sign(name)]

    def add_signer(
        self, delegations: Delegations, name: str, keys: Iterable[Key], threshold: int | None
    ) -> None:
        keys = list(keys)
        releases = _add_keys(delegations, RELEASES, keys)
        _add_keys(delegations, signer_role(name), keys)
        roles = delegations.roles or {}
        # releases first: it is the role a DCT pull trusts
        delegations.roles = {RELEASES: roles[RELEASES]} | {
            n: r for n, r in roles.items() if n != RELEASES
        }
        if threshold is not None:
            if not 1 <= threshold <= len(releases.keyids):
                raise BadInputError(
                    f"threshold {threshold} is impossible: releases has "
                    f"{len(releases.keyids)} key(s)"
                )
            releases.threshold = threshold

    def remove_signer(self, delegations: Delegations, name: str, *, force: bool) -> SignerRemoval:
        role_name = signer_role(name)
        roles = dict(delegations.roles or {})
        if role_name not in roles:
            raise BadInputError(f"{name} is not a signer")
        others = {k for n, r in roles.items() if n not in (role_name, RELEASES) for k in r.keyids}
        result = SignerRemoval(
            leaving_keyids=[k for k in roles[role_name].keyids if k not in others]
        )
        releases = roles.get(RELEASES)
        remaining = (
            [k for k in releases.keyids if k not in result.leaving_keyids] if releases else []
        )
        if releases is not None and not remaining and not force:
            raise BadInputError(
                f"{name} is the last signer: nobody could sign releases afterwards",
                hint="use --force to remove it anyway",
            )
        del roles[role_name]
        if releases is not None:
            if len(remaining) != len(releases.keyids):
                result.release_roles.append(RELEASES)
            if remaining:
                releases.keyids = remaining
                if releases.threshold > len(remaining):
                    result.warnings.append(
                        f"releases threshold lowered to {len(remaining)} (keys left)"
                    )
                    releases.threshold = len(remaining)
            else:
                del roles[RELEASES]
        delegations.roles = roles
        used = {k for r in roles.values() for k in r.keyids}
        for keyid in list(delegations.keys):
            if keyid not in used:
                del delegations.keys[keyid]
        return result

    def signer_of(self, role: str) -> str | None:
        if role == RELEASES or not role.startswith(SIGNER_PREFIX):
            return None
        return role[len(SIGNER_PREFIX) :]

    def delegator_of(self, role: str) -> str:
        return ROOT if role == TARGETS else TARGETS  # every DCT delegation hangs off targets


DCT = DctLayout()


def layout_for(delegations: Delegations | None) -> DelegationLayout:
    """The layout a collection uses, read from its (verified) delegations."""
    from trustkit.collections.bins import BinsLayout, binned_bits

    bits = binned_bits(delegations)
    return DCT if bits is None else BinsLayout(bits)


def _delegated(delegations: Delegations | None) -> dict[str, DelegatedRole]:
    if delegations is None or delegations.roles is None:
        return {}
    return dict(delegations.roles)


def _roles_for(delegations: Delegations | None, tag: str) -> list[tuple[str, bool]]:
    """python-tuf's own delegation look-up: the roles whose paths cover ``tag``, in order."""
    if delegations is None or delegations.roles is None:
        return []
    return list(delegations.get_roles_for_target(tag))


def _add_keys(delegations: Delegations, role: str, keys: Iterable[Key]) -> DelegatedRole:
    roles = delegations.roles if delegations.roles is not None else {}
    delegated = roles.get(role)
    if delegated is None:
        delegated = DelegatedRole(role, [], 1, False, paths=["*"])
        roles[role] = delegated
        delegations.roles = roles
    for key in keys:
        delegations.keys[key.keyid] = key
        if key.keyid not in delegated.keyids:
            delegated.keyids.append(key.keyid)
    return delegated
