"""The fast canonical JSON encoder is byte for byte securesystemslib's (property tests)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.formats import encode_canonical as slow

from trustkit.collections._canonical import encode_canonical as fast

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # lone surrogates are not UTF-8
    max_size=12,
)
_tricky = st.sampled_from(['"', "\\", "\n", "\x00", "\x1f", "\u2028", "é", "😀", "/", "\x7f"])
_strings = st.one_of(_text, _tricky, st.builds(lambda a, b: a + b, _text, _tricky))
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    _strings,
    st.floats(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_strings, children, max_size=5),
        st.dictionaries(st.integers(0, 5), children, min_size=1, max_size=2),
    ),
    max_leaves=30,
)


def _same(value: Any) -> None:
    try:
        expected = slow(value)
    except Exception as exc:  # refused by securesystemslib: refused the same way
        with pytest.raises(type(exc)):
            fast(value)
        return
    assert fast(value) == expected
    assert fast(value).encode("utf-8") == expected.encode("utf-8")  # type: ignore[union-attr]


@settings(max_examples=1000, deadline=None)
@given(_values)
def test_byte_identical_on_any_json_value(value: Any) -> None:
    _same(value)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1.5},
        {"a": [1, {"b": 2.0}]},
        {1: "int key"},
        {"k": "line\nbreak"},
        {"k": 'quote"'},
        {"k": "back\\slash"},
        {"k": "\x00"},
        {"k": True, "j": False, "n": None},
        {"z": 1, "a": 2, "é": 3, "A": 4, "": 5},
        [(), [], {}],
        2**80,
    ],
)
def test_every_fallback_case(value: Any) -> None:
    _same(value)


def test_subclasses_take_the_slow_path() -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    _same({"level": Level.HIGH})
    _same({Name("k"): Name("v")})


def test_tuf_metadata_trustkit_writes(trusted_repo: Any) -> None:
    """Every role of a real collection, DCT and bins: the bytes that are signed."""
    from trustkit.collections import sign_tags
    from trustkit.collections.engine import use_bins
    from trustkit.collections.repository import Collection
    from trustkit.stores import LocalDirStore

    tags = {f"t{i}": ("sha256:" + f"{i:064x}", i) for i in range(50)}
    sign_tags(trusted_repo.settings, trusted_repo.gun, tags, keystore=trusted_repo.keystore)
    use_bins(trusted_repo.settings, trusted_repo.gun, bits=3, keystore=trusted_repo.keystore)
    collection = Collection.load(
        LocalDirStore(trusted_repo.settings.local_server_dir), trusted_repo.gun
    )
    assert collection is not None
    documents = [collection.root, collection.timestamp, collection.snapshot, collection.targets]
    for name in collection.snapshot.signed.meta:
        md = collection.delegated(name[: -len(".json")])
        if md is not None:
            documents.append(md)
    assert len(documents) > 10
    for md in documents:
        _same(md.signed.to_dict())
        _same(md.to_dict())


def test_a_verification_scope_encodes_each_signed_once_and_writers_see_every_change() -> None:
    from datetime import datetime

    import tuf.api.serialization.json as tuf_json

    from trustkit.collections import _canonical
    from trustkit.collections._tuf import Metadata, MetaFile, Snapshot

    snapshot = Snapshot(1, None, datetime(2030, 1, 1, tzinfo=UTC), {"targets.json": MetaFile(1)})
    md = Metadata(snapshot)
    calls = []
    original = _canonical.encode_canonical

    def counting(value: Any) -> str:
        calls.append(1)
        return original(value)

    tuf_json.encode_canonical = counting  # type: ignore[attr-defined]
    try:
        with _canonical.reused_encodings():
            first, again = md.signed_bytes, md.signed_bytes
        assert first == again and len(calls) == 1  # ngclient's second encoding is reused
        # outside the scope (every writer) a change is always seen
        before = md.signed_bytes
        snapshot.version = 2
        assert md.signed_bytes != before and len(calls) == 3
        # a new scope starts empty: nothing carried over from an earlier one
        with _canonical.reused_encodings():
            assert md.signed_bytes == Metadata(snapshot).signed_bytes
    finally:
        tuf_json.encode_canonical = original  # type: ignore[attr-defined]
