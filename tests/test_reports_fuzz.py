"""Property tests: on mutated reports and VEX the parsers return a result or raise
ReportFormatError — never any other exception."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustkit.attest.model import ScanReport
from trustkit.attest.reports import parse_report
from trustkit.attest.vex import parse_vex
from trustkit.errors import ReportFormatError

DATA = Path(__file__).parent / "data" / "reports"
SAMPLES = [
    "trivy_alpine-39.json",
    "trivy_centos-7.json",
    "grype_TestJsonImgsPresenter.json",
    "trivy_alpine-310.sarif",
    "grype_TestSarifPresenter_image.sarif",
]
VEX = [
    "trivy_openvex.json",
    "trivy_openvex-oci.json",
    "vexctl_images.vex.json",
    "trivy_cyclonedx.json",
    "cyclonedx-bom-examples_VEX_vex.json",
    "trivy_csaf.json",
]
DOCS = {name: json.loads((DATA / name).read_bytes()) for name in SAMPLES + VEX}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):
            out += paths(value, (*prefix, index))
    return out


def mutate(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def mutated(draw: st.DrawFn, names: list[str]) -> bytes:
    name = draw(st.sampled_from(names))
    doc = DOCS[name]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(doc)))
        doc = mutate(doc, path, draw(json_values), draw(st.booleans()) and bool(path))
    return json.dumps(doc).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SAMPLES))
def test_report_parsers_never_crash_on_mutated_structure(data: bytes) -> None:
    with contextlib.suppress(ReportFormatError):
        assert isinstance(parse_report(data), ScanReport)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SAMPLES), st.integers(0, 10_000), st.binary(max_size=4), st.booleans())
def test_report_parsers_never_crash_on_mutated_bytes(
    name: str, at: int, junk: bytes, truncate: bool
) -> None:
    raw = (DATA / name).read_bytes()
    at %= len(raw)
    data = raw[:at] if truncate else raw[:at] + junk + raw[at + len(junk) :]
    with contextlib.suppress(ReportFormatError):
        parse_report(data)


@settings(max_examples=300, deadline=None)
@given(mutated(VEX))
def test_vex_parsers_never_crash(data: bytes) -> None:
    with contextlib.suppress(ReportFormatError):
        parse_vex(data)
