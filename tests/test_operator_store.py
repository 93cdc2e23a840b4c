"""The local image store (issue 15) makes the servin guide's shapes work: ``tag SRC DEST``,
``push REF`` (one argument), ``push --sign``, ``push --all-tags REPO``, ``push --scan REF`` and
``pull REF`` storing into the store. The two-argument forms keep working."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.base import run_cli, use_cli_env
from fixtures.registry import BuiltImage, Registry

from trustkit.config import Settings
from trustkit.registry import OCILayout, open_image_location

pytestmark = pytest.mark.registry
REPORTS = Path(__file__).resolve().parent.parent / "examples" / "reports"


@pytest.fixture
def store(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    use_cli_env(monkeypatch, settings)
    path = tmp_path / "image-store"
    monkeypatch.setenv("SERVIN_IMAGE_STORE", str(path))
    return path


def _registry_tags(settings: Settings, ref: str) -> list[str]:
    location = open_image_location(settings, ref)
    try:
        return sorted(location.list_tags())
    finally:
        location.close()


def test_tag_then_push_one_argument_and_all_tags(
    store: Path,
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = oci_image()
    v1, v2 = registry.ref(repo_name, "v1"), registry.ref(repo_name, "v2")
    code, out, err = run_cli(["tag", image.oci, v1], capsys)
    assert code == 0, err
    assert image.digest in out and v1 in OCILayout(store).tags()
    code, out, err = run_cli(["tag", v1, v2], capsys)  # a local image named again
    assert code == 0, err
    assert set(OCILayout(store).tags()) == {v1, v2}

    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "1")
    code, out, err = run_cli(["push", v1], capsys)  # servin push REF
    assert code == 0, err
    assert f"{v1}: digest: {image.digest}" in out and "Signed" in out
    assert _registry_tags(settings, v1) == ["v1"]

    monkeypatch.delenv("SERVIN_CONTENT_TRUST")
    code, out, err = run_cli(["push", "--all-tags", "--json", registry.ref(repo_name)[:-3]], capsys)
    assert code == 0, err
    pushed = json.loads(out)
    assert [p["destination"] for p in pushed] == [v1, v2]
    assert all(p["signed"] is False for p in pushed)  # content trust off, no --sign
    assert _registry_tags(settings, v1) == ["v1", "v2"]

    code, out, err = run_cli(["push", "--sign", v2], capsys)  # signs with content trust off
    assert code == 0, err
    assert "Signed" in out


def test_push_scan_one_argument(
    store: Path,
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trustkit.keys import KeyStore

    KeyStore(settings).generate(role="scanner", name="scanner")
    ref = registry.ref(repo_name, "scanned")
    assert run_cli(["tag", oci_image().oci, ref], capsys)[0] == 0
    code, out, err = run_cli(
        ["push", "--scan", "--report", str(REPORTS / "clean.trivy.json"), ref], capsys
    )
    assert code == 0, err
    assert "Attested" in out


def test_pull_stores_into_the_local_store(
    store: Path,
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = oci_image()
    ref = registry.ref(repo_name, "v1")
    assert run_cli(["push", image.oci, ref], capsys)[0] == 0  # the two-argument form
    code, _, err = run_cli(["pull", ref], capsys)
    assert code == 0, err
    layout = OCILayout(store)
    assert layout.tags() == [ref]
    assert layout.resolve(ref).digest == image.digest
    assert all(layout.blob_exists(b) for b in image.blobs)
    # a local image pushes again under another name without its source layout
    other = registry.ref(repo_name, "copy")
    assert run_cli(["tag", ref, other], capsys)[0] == 0
    assert run_cli(["push", other], capsys)[0] == 0
    assert _registry_tags(settings, ref) == ["copy", "v1"]
    code, _, err = run_cli(["push", registry.ref(repo_name, "missing")], capsys)
    assert code == 3 and "no local image" in err
