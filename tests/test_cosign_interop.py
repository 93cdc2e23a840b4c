"""cosign signatures both ways, against the real peers (cosign 2.5, skopeo 1.18 with sigstore):

* a content-trust push writes ``.sig`` signatures that ``cosign verify --key`` and skopeo's
  ``sigstoreSigned`` policy accept (single image and every instance of a multi-arch index), and
  refuse under another key or once the tag was moved to unsigned content; ``trust revoke``
  removes them;
* trustkit's cosign source accepts images signed by cosign and by skopeo under their keys and
  refuses another key or a signature of another digest.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fixtures.base import REPO_PASS
from fixtures.cosign import Cosign, _peer_env
from fixtures.registry import BuiltImage, Registry

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import FailureKind
from trustkit.keys import KeyStore, public_key_pem
from trustkit.pipeline.flows import push_image
from trustkit.registry.location import open_registry_location
from trustkit.services import Services
from trustkit.sources.cosign import (
    load_cosign_key,
    read_material,
    remove_signatures,
    signature_tag,
    verify_with_keys,
)

pytestmark = pytest.mark.peer


def _skopeo() -> str:
    path = _peer_env().get("SKOPEO_SIGSTORE")
    if not path or not Path(path).exists():
        pytest.skip("skopeo with sigstore support is not installed (scripts/install-peers.sh)")
    return path


@pytest.fixture
def signer_pub(settings: Settings, tmp_path: Path) -> Path:
    """A generated ECDSA P-256 targets key: the key content trust signs with."""
    return tmp_path / "unused.pub"


def _trustkit_pub(settings: Settings, gun: str, tmp_path: Path) -> Path:
    from trustkit.sources.cosign import signing_keyids

    keyids = set(signing_keyids(Services(settings), refs.parse(f"{gun}:v1")))
    assert keyids, "content trust signed without a key of its own"
    record = KeyStore(settings).get(sorted(keyids)[0])
    pub = tmp_path / "trustkit.pub"
    pub.write_bytes(public_key_pem(record.public_key))
    return pub


def _other_pub(tmp_path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pub = tmp_path / "other.pub"
    pub.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pub


def cosign_verify(cosign: Cosign, pub: Path, image: str) -> tuple[int, str]:
    done = cosign.run(
        "verify", "--key", str(pub), "--insecure-ignore-tlog=true", "--allow-http-registry", image
    )
    return done.returncode, done.stdout + done.stderr


def skopeo_pull(
    skopeo: str, tmp_path: Path, host: str, pub: Path, image: str, *, all_instances: bool = False
) -> tuple[int, str]:
    policy = tmp_path / f"policy-{pub.stem}.json"
    policy.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "docker": {
                        host: [
                            {
                                "type": "sigstoreSigned",
                                "keyPath": str(pub),
                                "signedIdentity": {"type": "matchRepoDigestOrExact"},
                            }
                        ]
                    },
                    "dir": {"": [{"type": "insecureAcceptAnything"}]},
                },
            }
        )
    )
    regd = tmp_path / "registries.d"
    regd.mkdir(exist_ok=True)
    (regd / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    out = tmp_path / "skopeo-out"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    args = [skopeo, "--policy", str(policy), "--registries.d", str(regd), "copy", "-q"]
    if all_instances:
        args.append("--all")
    args += ["--src-tls-verify=false", f"docker://{image}", f"dir:{out}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def _push(settings: Settings, image: BuiltImage, dest: str, *, sign: bool = True) -> str:
    return push_image(settings, image.oci, dest, sign=sign).descriptor.digest


def test_cosign_and_skopeo_accept_trustkit_signature_and_refuse_other_key_and_moved_tag(
    settings: Settings,
    registry: Registry,
    oci_image: object,
    cosign: Cosign,
    tmp_path: Path,
) -> None:
    skopeo = _skopeo()
    build = oci_image  # factory
    first = build(tag="v1", name="first")  # type: ignore[operator]
    repo = f"{registry.host}/cosign/single"
    digest = _push(settings, first, f"{repo}:v1")
    pub = _trustkit_pub(settings, repo, tmp_path)
    other = _other_pub(tmp_path)

    # the .sig tag holds one simple-signing layer whose payload names host/repo:tag
    location = open_registry_location(settings, refs.parse(f"{repo}:v1"))
    try:
        material = read_material(location, digest)
    finally:
        location.close()
    assert len(material.layers) == 1
    payload = json.loads(material.layers[0].payload)
    assert payload["critical"]["identity"]["docker-reference"] == f"{repo}:v1"
    assert set(payload["critical"]) == {"identity", "image", "type"}

    code, out = cosign_verify(cosign, pub, f"{repo}:v1")
    assert code == 0, out
    code, out = cosign_verify(cosign, other, f"{repo}:v1")
    assert code != 0 and "no matching signatures" in out, out
    code, out = skopeo_pull(skopeo, tmp_path, registry.host, pub, f"{repo}:v1")
    assert code == 0, out
    code, out = skopeo_pull(skopeo, tmp_path, registry.host, other, f"{repo}:v1")
    assert code != 0, out

    # the tag moved to unsigned content: both refuse it by tag
    second = build(tag="v1", name="second", seed=b"second")  # type: ignore[operator]
    _push(settings, second, f"{repo}:v1", sign=False)
    code, out = cosign_verify(cosign, pub, f"{repo}:v1")
    assert code != 0, out
    code, out = skopeo_pull(skopeo, tmp_path, registry.host, pub, f"{repo}:v1")
    assert code != 0, out
    # the signed digest still verifies by digest
    code, out = cosign_verify(cosign, pub, f"{repo}@{digest}")
    assert code == 0, out


def test_multi_arch_index_and_each_instance_verify(
    settings: Settings,
    registry: Registry,
    oci_index: object,
    cosign: Cosign,
    tmp_path: Path,
) -> None:
    skopeo = _skopeo()
    index = oci_index(tag="v1", name="multi")  # type: ignore[operator]
    repo = f"{registry.host}/cosign/multi"
    digest = _push(settings, index, f"{repo}:v1")
    assert digest == index.digest and len(index.children) == 2
    pub = _trustkit_pub(settings, repo, tmp_path)
    code, out = cosign_verify(cosign, pub, f"{repo}:v1")
    assert code == 0, out
    for child in index.children:
        code, out = cosign_verify(cosign, pub, f"{repo}@{child}")
        assert code == 0, out
    code, out = skopeo_pull(skopeo, tmp_path, registry.host, pub, f"{repo}:v1", all_instances=True)
    assert code == 0, out
    code, out = skopeo_pull(
        skopeo, tmp_path, registry.host, _other_pub(tmp_path), f"{repo}:v1", all_instances=True
    )
    assert code != 0, out


def test_revoke_removes_the_tags_cosign_signature(
    settings: Settings, registry: Registry, oci_image: object, cosign: Cosign, tmp_path: Path
) -> None:
    image = oci_image(tag="v1", name="revoked")  # type: ignore[operator]
    repo = f"{registry.host}/cosign/revoked"
    digest = _push(settings, image, f"{repo}:v1")
    pub = _trustkit_pub(settings, repo, tmp_path)
    assert cosign_verify(cosign, pub, f"{repo}:v1")[0] == 0
    removed = remove_signatures(Services(settings), refs.parse(f"{repo}:v1"), digest)
    assert removed == 1
    code, out = cosign_verify(cosign, pub, f"{repo}:v1")
    assert code != 0, out


def test_formats_setting_turns_cosign_off(
    settings: Settings, registry: Registry, oci_image: object
) -> None:
    image = oci_image(tag="v1", name="tuf-only")  # type: ignore[operator]
    repo = f"{registry.host}/cosign/tuf-only"
    tuf_only = settings.with_changes(signature_formats=("tuf",))
    digest = _push(tuf_only, image, f"{repo}:v1")
    location = open_registry_location(settings, refs.parse(f"{repo}:v1"))
    try:
        assert signature_tag(digest) not in location.list_tags()
    finally:
        location.close()


def test_trustkit_accepts_cosign_and_skopeo_signatures_and_refuses_another_key(
    settings: Settings,
    registry: Registry,
    oci_image: object,
    cosign: Cosign,
    tmp_path: Path,
) -> None:
    skopeo = _skopeo()
    repo = f"{registry.host}/cosign/peers"
    by_cosign = _push(settings, oci_image(tag="c", name="c"), f"{repo}:c", sign=False)  # type: ignore[operator]
    key, pub = cosign.key_pair(tmp_path / "cosign-keys")
    done = cosign.run(
        "sign", "--key", str(key), "--tlog-upload=false", "--allow-http-registry", "-y",
        f"{repo}@{by_cosign}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    # skopeo signs while copying (its own sigstore key pair)
    passphrase = tmp_path / "skopeo-pass"
    passphrase.write_text(REPO_PASS)
    prefix = tmp_path / "skopeo-key"
    subprocess.run(
        [skopeo, "generate-sigstore-key", "--output-prefix", str(prefix),
         "--passphrase-file", str(passphrase)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    source = oci_image(tag="s", name="s")  # type: ignore[operator]
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    done_s = subprocess.run(
        [skopeo, "--registries.d", str(regd), "copy", "-q", "--dest-tls-verify=false",
         "--sign-by-sigstore-private-key", f"{prefix}.private",
         "--sign-passphrase-file", str(passphrase),
         f"oci:{source.layout}:s", f"docker://{repo}:s"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done_s.returncode == 0, done_s.stderr
    location = open_registry_location(settings, refs.parse(f"{repo}:s"))
    try:
        by_skopeo = location.get_manifest("s").digest  # skopeo may re-encode the manifest
    finally:
        location.close()

    cosign_key = load_cosign_key(str(pub))
    skopeo_key = load_cosign_key(f"file://{prefix}.pub")
    other_key = load_cosign_key(str(_other_pub(tmp_path)))
    location = open_registry_location(settings, refs.parse(f"{repo}:c"))
    try:
        for digest, right in ((by_cosign, cosign_key), (by_skopeo, skopeo_key)):
            material = read_material(location, digest)
            good = verify_with_keys(material, [right])
            assert good.verified and good.signers[0].keyids == (right.keyid,), good
            bad = verify_with_keys(material, [other_key])
            assert not bad.verified and bad.failure is FailureKind.BAD_SIGNATURE
            assert "none verifies" in (bad.message or "")
        # cosign's signature of one image does not vouch for the other
        swapped = read_material(location, by_cosign)
        moved = type(swapped)(by_skopeo, swapped.layers)
        refused = verify_with_keys(moved, [cosign_key])
        assert not refused.verified and refused.failure is FailureKind.DIGEST_MISMATCH
        unsigned = verify_with_keys(read_material(location, "sha256:" + "0" * 64), [cosign_key])
        assert unsigned.failure is FailureKind.UNSIGNED
    finally:
        location.close()

    # the same through a cosign-key policy, as the gate, hooks and webhook decide
    from trustkit.pipeline.check import check_image
    from trustkit.verdict import Context

    def policy(name: str, *keys: Path) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: BLOCK\n"
            f"rules:\n  require_scan: false\n"
            f"  cosign_signed: {{keys: [{', '.join(str(k) for k in keys)}]}}\n"
        )
        return path

    peers = policy("peers", pub, Path(f"{prefix}.pub"))
    stranger = policy("stranger", _other_pub(tmp_path))
    unchecked = settings.with_changes(content_trust=False)  # these images have no TUF signature
    for image in (f"{repo}:c", f"{repo}:s"):
        allowed = check_image(unchecked, image, context=Context.CI, policy_files=[peers])
        assert allowed.allowed, allowed.summary()
        refused = check_image(unchecked, image, context=Context.CI, policy_files=[stranger])
        assert not refused.allowed and "none verifies with" in refused.reasons[0].message


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    from fixtures.base import ROOT_PASS

    return {
        "SERVIN_TRUST_DIR": str(settings.trust_dir),
        "SERVIN_CONFIG": str(settings.effective_config_dir),
        "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE": ROOT_PASS,
        "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE": REPO_PASS,
        "SERVIN_CONTENT_TRUST": "1",
        **extra,
    }


def test_cli_push_signs_for_cosign_and_trust_revoke_removes_it(
    settings: Settings,
    registry: Registry,
    oci_image: object,
    cosign: Cosign,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from click.testing import CliRunner

    from trustkit.cli import cli

    image = oci_image(tag="v1", name="cli")  # type: ignore[operator]
    repo = f"{registry.host}/cosign/cli"
    runner = CliRunner()
    pushed = runner.invoke(cli, ["push", image.oci, f"{repo}:v1"], env=_cli_env(settings))
    assert pushed.exit_code == 0, pushed.output
    pub = _trustkit_pub(settings, repo, tmp_path)
    assert cosign_verify(cosign, pub, f"{repo}:v1")[0] == 0
    revoked = runner.invoke(cli, ["trust", "revoke", f"{repo}:v1"], env=_cli_env(settings))
    assert revoked.exit_code == 0, revoked.output
    code, out = cosign_verify(cosign, pub, f"{repo}:v1")
    assert code != 0, out
    # SERVIN_SIGNATURE_FORMATS is checked: a typo is a one-line refusal, exit 2
    from trustkit.cli import main

    for key, value in _cli_env(settings, SERVIN_SIGNATURE_FORMATS="cosgin").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["push", image.oci, f"{repo}:v2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "SERVIN_SIGNATURE_FORMATS" in err and err.count("\n") == 1


def test_keys_that_cannot_make_a_cosign_signature_are_skipped_with_a_notice(
    settings: Settings, registry: Registry, oci_image: object
) -> None:
    from trustkit.sources.cosign import sign_pushed

    image = oci_image(tag="v1", name="ed")  # type: ignore[operator]
    repo = f"{registry.host}/cosign/ed"
    digest = _push(settings.with_changes(signature_formats=("tuf",)), image, f"{repo}:v1")
    record = KeyStore(settings).generate(role="targets", name="ed", keytype="ed25519")
    services = Services(settings)
    location = open_registry_location(settings, refs.parse(f"{repo}:v1"))
    try:
        descriptor = location.get_manifest(digest).descriptor
    finally:
        location.close()
    result = sign_pushed(services, refs.parse(f"{repo}:v1"), descriptor, [record.keyid])
    assert result.written == [] and len(result.notices) == 1
    assert "ed25519" in result.notices[0] and "skipped" in result.notices[0]
    assert "\n" not in result.notices[0]


def test_trust_sign_of_a_registry_tag_writes_the_cosign_signature_too(
    settings: Settings, registry: Registry, oci_image: object, cosign: Cosign, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from trustkit.cli import cli

    image = oci_image(tag="v1", name="later")  # type: ignore[operator]
    repo = f"{registry.host}/cosign/signed-later"
    _push(settings, image, f"{repo}:v1", sign=False)  # pushed unsigned, signed afterwards
    signed = CliRunner().invoke(cli, ["trust", "sign", f"{repo}:v1"], env=_cli_env(settings))
    assert signed.exit_code == 0, signed.output
    pub = _trustkit_pub(settings, repo, tmp_path)
    code, out = cosign_verify(cosign, pub, f"{repo}:v1")
    assert code == 0, out


def test_a_cosign_key_policy_judges_the_push_like_the_pull(
    settings: Settings, registry: Registry, oci_image: object, tmp_path: Path
) -> None:
    from trustkit.errors import PolicyRefusal
    from trustkit.pipeline.check import check_image
    from trustkit.pipeline.flows import push_gate
    from trustkit.verdict import Context

    repo = f"{registry.host}/cosign/gated"
    _push(settings, oci_image(tag="v1", name="g1"), f"{repo}:v1")  # type: ignore[operator]
    pub = _trustkit_pub(settings, repo, tmp_path)

    def policy(name: str, key: Path) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: BLOCK\n"
            f"rules:\n  require_scan: false\n  cosign_signed: {{keys: [{key}]}}\n"
        )
        return path

    ours = policy("ours", pub)
    image = oci_image(tag="v2", name="g2")  # type: ignore[operator]
    gate = push_gate(settings, f"{repo}:v2", policy_files=[ours], sign=True)
    result = push_image(settings, image.oci, f"{repo}:v2", sign=True, gate=gate)
    assert result.verdict is not None and result.verdict.allowed
    pulled = check_image(settings, f"{repo}:v2", context=Context.PULL, policy_files=[ours])
    assert pulled.allowed, pulled.summary()

    theirs = policy("theirs", _other_pub(tmp_path))
    refused = oci_image(tag="v3", name="g3")  # type: ignore[operator]
    gate = push_gate(settings, f"{repo}:v3", policy_files=[theirs], sign=True)
    with pytest.raises(PolicyRefusal, match="none verifies with"):
        push_image(settings, refused.oci, f"{repo}:v3", sign=True, gate=gate)
    location = open_registry_location(settings, refs.parse(f"{repo}:v3"))
    try:  # refused before signing: no cosign signature was written for it
        assert signature_tag(refused.digest) not in location.list_tags()
    finally:
        location.close()
