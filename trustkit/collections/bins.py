"""Hashed-bin delegations (TAP 15, python-tuf's ``SuccinctRoles``) with DCT semantics kept.

``targets`` delegates, as in DCT, to ``targets/releases`` (what a pull trusts) and to one
``targets/<signer>`` per signer (what each signer signed). In a binned collection those roles
hold no tags: each delegates to its own ``2**bits`` succinct bins, ``<role>.bin-<hex>``, and a
tag lives in the bin its name hashes to. The bins of ``targets/releases`` carry every signer's
keys and the releases threshold; the bins of ``targets/<signer>`` that signer's keys. The
delegating roles themselves are signed by the repository (targets) key, which can already
re-delegate anything, so an admin adds or removes signers without their keys (see ADR 0009).

``targets``' delegation to each binned role carries ``x-trustkit-bins: <bits>`` so a reader
knows the layout, and the bin of a tag, from ``targets`` alone; the authoritative bins (keys,
threshold, bit length) are the delegating role's ``succinct_roles``: a bin name that does not
match them does not verify.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from trustkit.collections._tuf import DelegatedRole, Delegations, SuccinctRoles
from trustkit.collections.model import (
    RELEASES,
    ROOT,
    SIGNER_PREFIX,
    TARGETS,
    CanSign,
    SignerRemoval,
    signer_role,
)
from trustkit.errors import BadInputError, UntrustedError

if TYPE_CHECKING:
    from trustkit.collections.repository import Collection
    from trustkit.keys import Key

#: the unrecognised field of a binned role's delegation in ``targets``: the bins' bit length
BINS_FIELD = "x-trustkit-bins"
#: bins after the delegating role's name: '.' is not allowed in signer names, so no signer's
#: role can ever be mistaken for a bin
BIN_INFIX = ".bin"
#: 512 bins: at 100,000 tags a bin holds ~195 tags (~20 KB) and the snapshot lists 512 bins per
#: binned role without hashes (~23 KB each); measured in docs/benchmarks.md
DEFAULT_BITS = 9
MIN_BITS, MAX_BITS = 1, 14


def check_bits(bits: int) -> int:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise BadInputError(f"bins: bits must be between {MIN_BITS} and {MAX_BITS}, not {bits}")
    return bits


def bins_prefix(role: str) -> str:
    return f"{role}{BIN_INFIX}"


def is_bin(role: str) -> bool:
    return f"{BIN_INFIX}-" in role


def binned_bits(delegations: Delegations | None) -> int | None:
    """The bit length a ``targets`` delegation marks, or None for a DCT collection."""
    if delegations is None or delegations.roles is None:
        return None
    for role in delegations.roles.values():
        bits = role.unrecognized_fields.get(BINS_FIELD)
        if isinstance(bits, int) and not isinstance(bits, bool):
            return bits
    return None


def bin_for(role: str, bits: int, tag: str) -> str:
    """The bin of ``role``'s family that holds ``tag`` (python-tuf's own hashing)."""

    return SuccinctRoles([], 1, bits, bins_prefix(role)).get_role_for_target(tag)


def all_bins(role: str, bits: int) -> list[str]:

    return list(SuccinctRoles([], 1, bits, bins_prefix(role)).get_roles())


class BinsLayout:
    """DCT's roles, each spread over hashed bins (see the module docstring)."""

    name = "bins"

    def __init__(self, bits: int) -> None:
        self.bits = check_bits(bits)

    def _families(self, delegations: Delegations | None) -> list[str]:
        if delegations is None or delegations.roles is None:
            return []
        return list(delegations.roles)

    def lookup_roles(self, delegations: Delegations | None, tag: str) -> list[str]:
        if RELEASES in self._families(delegations):
            return [bin_for(RELEASES, self.bits, tag), TARGETS]
        return [TARGETS]

    def listing_roles(self, delegations: Delegations | None) -> list[str]:
        if RELEASES in self._families(delegations):
            return [*all_bins(RELEASES, self.bits), TARGETS]
        return [TARGETS]

    def release_roles(self, delegations: Delegations | None) -> list[str]:
        if RELEASES in self._families(delegations):
            return all_bins(RELEASES, self.bits)
        return []

    def signer_roles(self, delegations: Delegations | None) -> dict[str, str]:
        # the signer's delegating role (its bins hang off it)
        return {
            name: role
            for role in self._families(delegations)
            if (name := self.signer_of(role)) is not None
        }

    def record_roles(self, delegations: Delegations | None, tag: str) -> dict[str, str]:
        return {
            name: bin_for(role, self.bits, tag)
            for role in self._families(delegations)
            if (name := self.signer_of(role)) is not None
        }

    def write_roles(
        self, delegations: Delegations | None, tag: str | None, can_sign: CanSign
    ) -> list[str]:
        families = self._families(delegations)
        if not families:
            return [TARGETS]
        roles: list[str] = []
        for family in families:
            names = (
                all_bins(family, self.bits) if tag is None else [bin_for(family, self.bits, tag)]
            )
            roles.extend(name for name in names if can_sign(name))
        return roles

    def add_signer(
        self, delegations: Delegations, name: str, keys: Iterable[Key], threshold: int | None
    ) -> None:
        # a binned signer change edits the delegating roles too: see add_signer_binned
        raise BadInputError("a binned collection's signers change through add_signer_binned")

    def remove_signer(self, delegations: Delegations, name: str, *, force: bool) -> SignerRemoval:
        raise BadInputError("a binned collection's signers change through remove_signer_binned")

    def signer_of(self, role: str) -> str | None:
        family = role.split(f"{BIN_INFIX}-", 1)[0]
        if family == RELEASES or not family.startswith(SIGNER_PREFIX):
            return None
        return family[len(SIGNER_PREFIX) :]

    def delegator_of(self, role: str) -> str:
        if role == TARGETS:
            return ROOT
        if is_bin(role):
            return role.split(f"{BIN_INFIX}-", 1)[0]
        return TARGETS


def binned_delegation(
    name: str, targets_keyids: list[str], threshold: int, bits: int
) -> DelegatedRole:
    """``targets``' delegation to a binned role: signed by the repository key, marked."""
    return DelegatedRole(
        name,
        list(targets_keyids),
        threshold,
        True,
        paths=["*"],
        unrecognized_fields={BINS_FIELD: check_bits(bits)},
    )


__all__ = [
    "BINS_FIELD",
    "DEFAULT_BITS",
    "BinsLayout",
    "all_bins",
    "bin_for",
    "binned_bits",
    "binned_delegation",
    "is_bin",
]


def _succinct(collection: Collection, family: str) -> SuccinctRoles:
    """The bins of ``family`` as currently (maybe edited) delegated."""
    current = collection.current_targets(family)
    if current is None or current.delegations is None or current.delegations.succinct_roles is None:
        raise UntrustedError(f"{family} of {collection.gun} does not delegate to bins")
    return current.delegations.succinct_roles


def _edit_family(collection: Collection, family: str) -> Delegations:
    """The delegations of ``family``'s delegating role, for editing (a new version)."""
    delegations = collection.edit_role(family).delegations
    assert delegations is not None and delegations.succinct_roles is not None
    return delegations


def add_signer_binned(
    collection: Collection, bits: int, name: str, keys: Iterable[Key], threshold: int | None
) -> None:
    """DCT's add-signer in a binned collection: the keys join the releases bins and the
    signer's own bins (a new delegating role for a new signer). Bins already published keep
    verifying: keys are only added."""

    keys = list(keys)
    targets = collection.edit_targets()
    assert targets.delegations is not None and targets.delegations.roles is not None
    roles = targets.delegations.roles
    repository = collection.root.signed.roles[TARGETS]
    for keyid in repository.keyids:
        targets.delegations.keys[keyid] = collection.root.signed.keys[keyid]
    for family in (RELEASES, signer_role(name)):
        if family not in roles:
            roles[family] = binned_delegation(family, repository.keyids, repository.threshold, bits)
            md = collection.edit_role(family)
            md.targets.clear()
            md.delegations = Delegations(
                keys={}, roles=None, succinct_roles=SuccinctRoles([], 1, bits, bins_prefix(family))
            )
        delegations = _edit_family(collection, family)
        succinct = delegations.succinct_roles
        assert succinct is not None
        for key in keys:
            delegations.keys[key.keyid] = key
            if key.keyid not in succinct.keyids:
                succinct.keyids.append(key.keyid)
    # releases first: it is the role a pull trusts
    targets.delegations.roles = {RELEASES: roles[RELEASES]} | {
        n: r for n, r in roles.items() if n != RELEASES
    }
    if threshold is not None:
        releases = _succinct(collection, RELEASES)
        if not 1 <= threshold <= len(releases.keyids):
            raise BadInputError(
                f"threshold {threshold} is impossible: releases has {len(releases.keyids)} key(s)"
            )
        releases.threshold = threshold


def remove_signer_binned(
    collection: Collection, bits: int, name: str, *, force: bool
) -> SignerRemoval:
    """DCT's remove-signer in a binned collection: the signer's delegation goes, and its keys
    leave the releases bins (unless another signer holds them). The caller then keeps only
    the release bins' tags a remaining signer vouched for, as for DCT."""
    family = signer_role(name)
    targets = collection.edit_targets()
    assert targets.delegations is not None and targets.delegations.roles is not None
    roles = dict(targets.delegations.roles)
    if family not in roles:
        raise BadInputError(f"{name} is not a signer")
    others = {
        k
        for other in roles
        if other not in (family, RELEASES)
        for k in _succinct(collection, other).keyids
    }
    result = SignerRemoval(
        leaving_keyids=[k for k in _succinct(collection, family).keyids if k not in others]
    )
    releases = _succinct(collection, RELEASES) if RELEASES in roles else None
    remaining = [k for k in releases.keyids if k not in result.leaving_keyids] if releases else []
    if releases is not None and not remaining and not force:
        raise BadInputError(
            f"{name} is the last signer: nobody could sign releases afterwards",
            hint="use --force to remove it anyway",
        )
    del roles[family]
    if releases is not None and len(remaining) != len(releases.keyids):
        published = [b for b in all_bins(RELEASES, bits) if collection.published_version(b) > 0]
        if remaining:
            delegations = _edit_family(collection, RELEASES)
            succinct = delegations.succinct_roles
            assert succinct is not None
            succinct.keyids = remaining
            for keyid in list(delegations.keys):
                if keyid not in remaining:
                    del delegations.keys[keyid]
            if succinct.threshold > len(remaining):
                result.warnings.append(
                    f"releases threshold lowered to {len(remaining)} (keys left)"
                )
                succinct.threshold = len(remaining)
        else:
            del roles[RELEASES]
        result.release_roles.extend(published)
    targets.delegations.roles = roles
    return result
