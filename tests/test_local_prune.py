"""The local directory store keeps every root and the newest ``keep`` versions of other roles."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fixtures.trust import TrustedRepo

from trustkit.collections import verify_tag
from trustkit.config import Settings
from trustkit.errors import BadInputError
from trustkit.stores import open_store
from trustkit.stores.local import LocalDirStore


def _versions(store: LocalDirStore, gun: str, role: str) -> list[int]:
    from trustkit.stores import escape_gun, metadata_filename

    directory = store.root / escape_gun(gun)
    suffix = metadata_filename(role, 1)[len("1.") :]
    return sorted(int(p.name.split(".", 1)[0]) for p in directory.glob(f"*.{suffix}"))


def test_publishes_prune_old_versions_but_keep_every_root(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    client = fresh_trust_client("early")
    assert verify_tag(client, signed_repo.tag("v1")).tag == "v1"  # a client trusting v1-era data
    for i in range(10):
        signed_repo.sign(f"t{i}")
    store = LocalDirStore(signed_repo.settings.local_server_dir)
    gun = signed_repo.gun
    snapshots = _versions(store, gun, "snapshot")
    assert len(snapshots) == 4 and snapshots[-1] >= 12
    assert len(_versions(store, gun, "timestamp")) == 4
    assert len(_versions(store, gun, "targets/releases")) == 4
    assert _versions(store, gun, "root") == [1]  # roots are never pruned
    # the early client walks forward from what it trusted; a new one from 1.root.json
    for settings in (client, fresh_trust_client("late")):
        for tag in ("v1", "t0", "t9"):
            assert verify_tag(settings, signed_repo.tag(tag)).tag == tag


def test_keep_is_a_store_option(signed_repo: TrustedRepo) -> None:
    url = f"file://{signed_repo.settings.local_server_dir}?keep=2"
    settings = signed_repo.settings.with_changes(trust_server=url)
    assert settings.local_server_dir == signed_repo.settings.local_server_dir
    store = open_store(url)
    assert isinstance(store, LocalDirStore) and store.keep == 2
    repo = TrustedRepo(settings, signed_repo.keystore, signed_repo.ref, signed_repo.signer)
    for i in range(3):
        repo.sign(f"k{i}")
    assert len(_versions(store, signed_repo.gun, "snapshot")) == 2
    with pytest.raises(BadInputError):
        open_store(f"file://{signed_repo.settings.local_server_dir}?keep=0")
    with pytest.raises(BadInputError):
        open_store(f"file://{signed_repo.settings.local_server_dir}?kept=3")
