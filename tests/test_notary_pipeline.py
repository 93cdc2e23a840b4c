"""Content trust from a notary-server through the pipeline: `trustkit pull`, servin's pre-pull
hook and the CI gate allow an image the notary CLI signed and refuse one it did not; a tag moved
in the registry is judged at the digest Notary signed."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from fixtures.notary import NotaryCLI, NotaryServer, needs_notary
from fixtures.registry import Registry, make_oci_image, use_registry

from trustkit.cli import main
from trustkit.config import Settings
from trustkit.pipeline.flows import push_image
from trustkit.services import Services

pytestmark = [pytest.mark.peer, pytest.mark.registry, needs_notary]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_pull_and_gate_use_the_notary_collection(
    notary_server: NotaryServer,
    registry: Registry,
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = f"{registry.host}/t/notary-pipeline-{secrets.token_hex(3)}"
    signed = make_oci_image(tmp_path / "signed", "v1", (256,), seed=b"signed")
    unsigned = make_oci_image(tmp_path / "unsigned", "v1", (256,), seed=b"unsigned")
    settings = Settings.from_env()
    use_registry(settings, registry)
    with Services(settings.with_changes(trust_server="local")) as services:
        push_image(services, signed.oci, f"{repo}:v1", sign=False)
        push_image(services, unsigned.oci, f"{repo}:v2", sign=False)
    cli = NotaryCLI(notary_server.url, tmp_path / "notary")
    cli.run("init", "-p", repo)
    hex_digest = signed.digest.removeprefix("sha256:")
    cli.run("addhash", "-p", repo, "v1", str(signed.size), "--sha256", hex_digest)

    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "1")
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", notary_server.url)
    monkeypatch.setenv("SERVIN_SIGNATURE_FORMATS", "tuf")
    code, out, err = _run(capsys, "gate", f"{repo}:v1")
    assert code == 0, out + err
    assert "ALLOW" in out and signed.digest in out
    code, out, err = _run(capsys, "gate", f"{repo}:v2")
    assert code == 1, out + err
    assert "BLOCK" in out

    # servin's pre-pull hook answers the digest Notary signed, and refuses the unsigned tag
    from trustkit import hooks

    with_notary = Settings.from_env()
    code, answer = hooks.handle(
        with_notary,
        "pre-pull",
        json.dumps({"operation": "pull", "reference": f"{repo}:v1"}).encode(),
    )
    assert code == 0 and answer["allow"] is True and answer["digest"] == signed.digest
    code, answer = hooks.handle(
        with_notary,
        "pre-pull",
        json.dumps({"operation": "pull", "reference": f"{repo}:v2"}).encode(),
    )
    assert code == 1 and answer["allow"] is False and answer["details"][0]["rule"] == "trust"

    pulled = tmp_path / "pulled"
    code, out, err = _run(capsys, "pull", f"{repo}:v1", "--dest", f"oci:{pulled}:v1")
    assert code == 0, err
    assert (pulled / "index.json").exists() and signed.digest in out + err
    code, _, err = _run(capsys, "pull", f"{repo}:v2", "--dest", f"oci:{tmp_path / 'no'}:v2")
    assert code == 1 and "v2" in err, err
    assert not (tmp_path / "no").exists()

    # the registry's v1 now serves other content: as docker with DCT, the decision is about
    # the digest Notary signed, never what the tag points at now
    with Services(settings.with_changes(trust_server="local")) as services:
        push_image(services, unsigned.oci, f"{repo}:v1", sign=False)
    code, out, err = _run(capsys, "gate", f"{repo}:v1")
    assert code == 0 and signed.digest in out and unsigned.digest not in out, out + err
