"""``read_bounded``: every byte up to the bound, never a silent truncation, sized by the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustkit._fs import read_bounded
from trustkit.errors import InputTooLargeError


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=5000), limit=st.integers(min_value=0, max_value=5000)
)
def test_reads_the_whole_file_or_refuses_it(
    tmp_path_factory: pytest.TempPathFactory, size: int, limit: int
) -> None:
    path = tmp_path_factory.mktemp("bounded") / "file"
    data = bytes(i % 251 for i in range(size))
    path.write_bytes(data)
    if size > limit:
        with pytest.raises(InputTooLargeError):
            read_bounded(path, limit)
    else:
        assert read_bounded(path, limit) == data


def test_a_file_whose_stat_says_nothing_is_still_read_whole() -> None:
    # /proc files report size 0 and have content: what the stat says is only a first guess
    data = read_bounded(Path("/proc/self/status"), 1 << 20)
    assert b"Name:" in data and data.endswith(b"\n")


def test_a_file_larger_than_its_stat_is_refused_past_the_bound() -> None:
    with pytest.raises(InputTooLargeError):
        read_bounded(Path("/proc/self/status"), 10)
