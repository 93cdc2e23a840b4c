"""Issue 14, "Configuration fails closed": each test stages what an attacker (or a careless
deployment) does and checks that trustkit refuses loudly instead of quietly allowing."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.cosign import put_tiny_image
from fixtures.pipeline import TRUSTKIT, PipelineWorld

from trustkit._json import load_json_object
from trustkit.attest.reports import parse_report
from trustkit.attest.vex import parse_vex
from trustkit.cli import main
from trustkit.config import Settings
from trustkit.errors import BadInputError, ReportFormatError
from trustkit.keys import KeyStore
from trustkit.registry.location import open_image_location

# one digit past CPython's int-to-str limit (sys.get_int_max_str_digits(), 4,300 by default)
HUGE_INT = "9" * 4301


# --- an integer of over 4,300 digits: one line, exit 2 -------------------------------------
def test_huge_integer_in_a_report_is_a_format_error() -> None:
    data = f'{{"SchemaVersion": {HUGE_INT}, "Results": []}}'.encode()
    with pytest.raises(ReportFormatError, match="number too long"):
        parse_report(data)


def test_huge_integer_in_vex_is_a_format_error() -> None:
    data = (
        '{"@context": "https://openvex.dev/ns/v0.2.0", "version": '
        + HUGE_INT
        + ', "statements": []}'
    ).encode()
    with pytest.raises(ReportFormatError, match="number too long"):
        parse_vex(data)


def test_huge_integer_in_any_untrusted_json_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="hook request is not valid JSON"):
        load_json_object(f'{{"n": {HUGE_INT}}}', what="hook request")


def test_huge_integer_report_through_the_cli_is_one_line_exit_2(
    settings: Settings,
    attest_layout: Path,
    key_store: KeyStore,
    passphrase_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, image), "v1")
    key_store.generate(role="scanner", name="scanner")
    report = tmp_path / "report.json"
    report.write_text(f'{{"SchemaVersion": 2, "Results": [], "ArtifactName": {HUGE_INT}}}')
    vex = tmp_path / "app.vex.json"
    vex.write_text(json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "statements": []}))
    vex.write_text(vex.read_text()[:-1] + f', "version": {HUGE_INT}}}')
    clean = Path(__file__).parent / "data" / "reports" / "trivy_alpine-39.json"
    for extra in (["--report", str(report)], ["--report", str(clean), "--vex", str(vex)]):
        with pytest.raises(SystemExit) as exc:
            main(["scan", "attest", image, *extra])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "number too long" in err and "Traceback" not in err


# --- policy files: load them or refuse loudly, never skip silently -------------------------
def _policy(name: str, severity: str = "HIGH") -> str:
    return (
        f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: BLOCK\n"
        f"rules:\n  severity: {severity}\n"
    )


@pytest.fixture
def policy_dir(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "policies"
    path.mkdir(mode=0o700)
    return path


def _load(settings: Settings, policy_dir: Path) -> list[str]:
    from trustkit.policy import load_policies

    return [p.name for p in load_policies(settings.with_changes(policy_dir=policy_dir))]


def test_upper_case_extension_is_loaded(settings: Settings, policy_dir: Path) -> None:
    (policy_dir / "PROD.YAML").write_text(_policy("prod"))
    (policy_dir / "Staging.Yml").write_text(_policy("staging"))
    assert _load(settings, policy_dir) == ["prod", "staging"]


def _configmap(volume: Path, files: dict[str, str], links: list[str]) -> None:
    """A Kubernetes ConfigMap volume's shape: the data in a timestamped directory, ``..data``
    pointing at it, and each key a symlink through ``..data``."""
    data = volume / "..2026_11_29_10_00_00.123456789"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    (volume / "..data").symlink_to(data.name)
    for name in links:
        (volume / name).symlink_to(f"..data/{name}")


def test_configmap_volume_loads(settings: Settings, policy_dir: Path) -> None:
    _configmap(policy_dir, {"prod.yaml": _policy("prod")}, ["prod.yaml"])
    assert _load(settings, policy_dir) == ["prod"]


def test_dangling_symlink_is_refused_not_skipped(settings: Settings, policy_dir: Path) -> None:
    """A key whose data is gone (a half-applied ConfigMap update, a deleted target): the old
    loader skipped it and the strict policy silently stopped applying."""
    from trustkit.errors import PolicyFileError

    _configmap(policy_dir, {"prod.yaml": _policy("prod")}, ["prod.yaml", "strict.yaml"])
    with pytest.raises(PolicyFileError, match=r"strict\.yaml is a dangling symlink"):
        _load(settings, policy_dir)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_policy_entry_that_is_no_file_is_refused(
    settings: Settings, policy_dir: Path, kind: str
) -> None:
    from trustkit.errors import PolicyFileError

    (policy_dir / "prod.yaml").write_text(_policy("prod"))
    odd = policy_dir / "strict.yaml"
    if kind == "directory":
        odd.mkdir()
    else:
        os.mkfifo(odd)  # reading a FIFO would hang the gate: refused without reading
    with pytest.raises(PolicyFileError, match=r"strict\.yaml is (a directory|not a regular)"):
        _load(settings, policy_dir)


def test_hidden_files_stay_skipped(settings: Settings, policy_dir: Path) -> None:
    (policy_dir / "prod.yaml").write_text(_policy("prod"))
    (policy_dir / ".#prod.yaml").symlink_to("root@host.1234:1700000000")  # an editor's lock
    assert _load(settings, policy_dir) == ["prod"]


# --- SERVIN_POLICY_DIR configured but missing: an error, never "allow everything" ----------
def test_configured_policy_dir_that_does_not_exist_is_an_error(
    settings: Settings, tmp_path: Path
) -> None:
    from trustkit.errors import PolicyFileError
    from trustkit.policy import load_policies

    typo = tmp_path / "polices"
    with pytest.raises(PolicyFileError, match="polices does not exist") as exc:
        load_policies(settings.with_changes(policy_dir=typo))
    assert exc.value.exit_code == 2


def test_default_policy_dir_may_be_absent(settings: Settings) -> None:
    from trustkit.policy import load_policies

    assert not settings.effective_policy_dir.exists()
    assert load_policies(settings) == []


# --- permissions: created 0700; policies others could write are refused --------------------
def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_first_policy_create_under_umask_002_is_private(
    passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = os.umask(0o002)
    try:
        main(["policy", "create", "--severity", "HIGH", "prod"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        os.umask(old)
    trust_dir = passphrase_env
    assert _mode(trust_dir) == 0o700
    assert _mode(trust_dir / "policies") == 0o700
    assert _mode(trust_dir / "policies" / "prod.yaml") == 0o600


def test_atomic_write_and_lock_create_private_parents(tmp_path: Path) -> None:
    from trustkit._fs import atomic_write, file_lock

    old = os.umask(0o002)
    try:
        atomic_write(tmp_path / "a" / "b" / "file", b"x")
        with file_lock(tmp_path / "c" / "d" / ".lock"):
            pass
    finally:
        os.umask(old)
    for directory in ("a", "a/b", "c", "c/d"):
        assert _mode(tmp_path / directory) == 0o700, directory


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_policy_file_writable_by_others_is_refused(
    settings: Settings, policy_dir: Path, mode: int
) -> None:
    from trustkit.errors import PolicyFileError

    path = policy_dir / "prod.yaml"
    path.write_text(_policy("prod"))
    path.chmod(mode)
    with pytest.raises(PolicyFileError, match="writable by other users") as exc:
        _load(settings, policy_dir)
    assert "chmod go-w" in exc.value.one_line()


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_policy_dir_writable_by_others_is_refused(
    settings: Settings, policy_dir: Path, mode: int
) -> None:
    """Even sticky (/tmp-like): anyone may add a file, and every file in it is loaded."""
    from trustkit.errors import PolicyFileError

    (policy_dir / "prod.yaml").write_text(_policy("prod"))
    policy_dir.chmod(mode)
    with pytest.raises(PolicyFileError, match=r"policy directory .* writable by other users"):
        _load(settings, policy_dir)


def test_policy_file_in_a_loose_directory_via_symlink_is_refused(
    settings: Settings, policy_dir: Path, tmp_path: Path
) -> None:
    """The file is checked where it really lives: a link into a world-writable directory
    lets anyone replace the target."""
    from trustkit.errors import PolicyFileError

    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    (loose / "prod.yaml").write_text(_policy("prod"))
    (policy_dir / "prod.yaml").symlink_to(loose / "prod.yaml")
    with pytest.raises(PolicyFileError, match="which is writable by other users"):
        _load(settings, policy_dir)


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid"), reason="POSIX only")
def test_policy_file_owned_by_another_user_is_refused(settings: Settings, policy_dir: Path) -> None:
    from trustkit.errors import PolicyFileError

    if os.geteuid() != 0:
        pytest.skip("needs root to give a file away")
    path = policy_dir / "prod.yaml"
    path.write_text(_policy("prod"))
    os.chown(path, 65534, 65534)
    with pytest.raises(PolicyFileError, match="owned by uid 65534"):
        _load(settings, policy_dir)


def test_trusted_scanner_key_writable_by_others_is_refused(
    settings: Settings, policy_dir: Path, key_store: KeyStore
) -> None:
    from trustkit.errors import PolicyFileError
    from trustkit.keys import public_key_pem

    record = key_store.generate(role="scanner", name="scanner")
    pub = policy_dir / "scanner.pub"
    pub.write_bytes(public_key_pem(record.public_key))
    pub.chmod(0o666)
    (policy_dir / "prod.yaml").write_text(_policy("prod") + "  trusted_scanners: [scanner.pub]\n")
    with pytest.raises(PolicyFileError, match="writable by other users"):
        _load(settings, policy_dir)
    pub.chmod(0o644)
    assert _load(settings, policy_dir) == ["prod"]


def test_read_only_mount_is_not_writable_by_anyone(
    settings: Settings, policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ConfigMap volume is a read-only tmpfs whose directory modes say 0777: the mount, not
    the mode, decides. (Mounting needs privileges the tests lack: the statvfs flag is faked.)"""
    import trustkit._fs

    (policy_dir / "prod.yaml").write_text(_policy("prod"))
    policy_dir.chmod(0o777)
    for name in ("fstatvfs", "statvfs"):
        real = getattr(os, name)

        def read_only(where: Any, real: Any = real) -> Any:
            return type("ReadOnly", (), {"f_flag": real(where).f_flag | os.ST_RDONLY})()

        monkeypatch.setattr(trustkit._fs.os, name, read_only)
    assert _load(settings, policy_dir) == ["prod"]


# --- the writer lock never follows a planted symlink ---------------------------------------
def test_planted_lock_symlink_is_not_followed(
    settings: Settings, key_store: KeyStore, tmp_path: Path
) -> None:
    from trustkit.errors import StorageError

    victim = tmp_path / "victim"  # e.g. /etc/cron.d/x when trustkit runs as root
    settings.private_dir.mkdir(parents=True)
    (settings.private_dir / ".lock").symlink_to(victim)
    with pytest.raises(StorageError, match="symbolic link"):
        key_store.generate(role="scanner", name="scanner")
    assert not victim.exists() and not victim.is_symlink()
    assert key_store.records() == []


def test_planted_lock_fifo_or_foreign_file_is_refused(tmp_path: Path) -> None:
    from trustkit._fs import file_lock
    from trustkit.errors import StorageError

    fifo = tmp_path / "fifo.lock"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match="not a regular file owned by you"), file_lock(fifo):
        pass
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign.lock"
        foreign.write_bytes(b"")
        os.chown(foreign, 65534, 65534)
        with pytest.raises(StorageError, match="owned by you"), file_lock(foreign):
            pass


# --- key files: the store's own files and key files named on the command line --------------
def test_stored_private_key_readable_by_others_is_refused(
    settings: Settings, key_store: KeyStore
) -> None:
    from trustkit.errors import KeyStoreError
    from trustkit.keys import PassphraseSource

    record = key_store.generate(role="scanner", name="scanner")
    (key_file,) = [
        p
        for p in settings.private_dir.iterdir()
        if p.name.startswith(record.keyid) and not p.name.endswith(".json")
    ]
    key_file.chmod(0o644)
    fresh = KeyStore(settings, PassphraseSource(settings, interactive=False))
    with pytest.raises(KeyStoreError, match="readable by other users"):
        fresh.signer(record.keyid)


def test_key_record_writable_by_others_is_refused(settings: Settings, key_store: KeyStore) -> None:
    """The record says which role a key has: a writable record turns a scanner key into a
    signer key."""
    from trustkit.errors import KeyStoreError

    record = key_store.generate(role="scanner", name="scanner")
    (record_file,) = settings.private_dir.glob(f"{record.keyid}*.json")
    record_file.chmod(0o666)
    with pytest.raises(KeyStoreError, match=r"key record .* writable by other users"):
        KeyStore(settings).records()


def test_public_key_on_the_command_line_writable_by_others_is_refused(
    passphrase_env: Path, key_store: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trustkit.keys import public_key_pem

    record = key_store.generate(role="delegation", name="alice")
    pub = tmp_path / "alice.pub"
    pub.write_bytes(public_key_pem(record.public_key))
    pub.chmod(0o666)
    with pytest.raises(SystemExit) as exc:
        main(["trust", "signer", "add", "--key", str(pub), "alice", "localhost:1/app"])
    assert exc.value.code == 2
    assert "writable by other users" in capsys.readouterr().err


# --- SERVIN_CONTENT_TRUST: what is not an explicit "off" is on ------------------------------
@pytest.mark.parametrize(
    ("value", "on"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("off", False),
        ("1", True),
        ("true", True),
        ("yes", True),
        ("on", True),
        ("enabled", True),
        ("required", True),
        ("2", True),
        ("ture", True),  # a typo must not switch verification off
        (" ", True),
    ],
)
def test_content_trust_values(value: str | None, on: bool) -> None:
    env = {"HOME": "/nonexistent"}
    if value is not None:
        env["SERVIN_CONTENT_TRUST"] = value
    assert Settings.from_env(env).content_trust is on


@pytest.mark.registry
@pytest.mark.parametrize("value", ["enabled", "required", "2"])
def test_unknown_content_trust_value_refuses_an_unsigned_pull(
    pipeline_world: PipelineWorld, value: str
) -> None:
    """The pre-pull hook, as servin runs it, for an image nobody signed: with the old parser
    these values meant "off" and the image was allowed."""
    settings = pipeline_world.settings
    request = json.dumps({"operation": "pull", "reference": pipeline_world.ref("unsigned")})
    proc = subprocess.run(
        [*TRUSTKIT, "hook", "pre-pull"],
        input=request.encode(),
        capture_output=True,
        env=pipeline_world.env(settings, SERVIN_CONTENT_TRUST=value),
        timeout=120,
        check=False,
    )
    answer = json.loads(proc.stdout.decode().splitlines()[0])
    assert answer["allow"] is False, answer
    assert proc.returncode == 1


# --- SERVIN_POLICY_DIR configured but missing: gate, hook and webhook refuse ----------------
@pytest.mark.registry
def test_missing_policy_dir_fails_gate_hook_and_webhook(
    pipeline_world: PipelineWorld,
    tmp_path: Path,
    webhook_server: Any,
) -> None:
    """The juice image has 25 CRITICAL findings; the operator's policy would block it, but the
    directory's name has a typo. Before: no policies, so gate exit 0, hook allow, webhook ready
    and admitting."""
    from trustkit.webhook import PipelineChecker

    settings = pipeline_world.settings.with_changes(policy_dir=tmp_path / "polices")
    env = pipeline_world.env(settings)
    image = pipeline_world.ref("juice")
    gate = subprocess.run(
        [*TRUSTKIT, "gate", image], capture_output=True, env=env, timeout=120, check=False
    )
    assert gate.returncode == 2, gate.stderr
    assert b"polices does not exist" in gate.stderr
    request = json.dumps({"operation": "pull", "reference": image}).encode()
    hook = subprocess.run(
        [*TRUSTKIT, "hook", "pre-pull"],
        input=request,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    answer = json.loads(hook.stdout.decode().splitlines()[0])
    assert hook.returncode == 2 and answer["allow"] is False, answer
    served = webhook_server(PipelineChecker(settings))
    client = served.client()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        reply = client.get("/readyz")
        assert reply.status_code == 503, reply.text
        time.sleep(0.1)
    assert "polices does not exist" in reply.json()["reason"]


# --- secrets never reach a child process -------------------------------------------------
SECRETS = {
    "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE": "root-secret-1",
    "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repo-secret-2",
    "SERVIN_HSM_PIN": "hsm-secret-3",
    "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "docker-secret-4",
}


def _export_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SERVIN_CONFIG", "/kept/for/the/child")


def _assert_scrubbed(dump: str) -> None:
    for name, value in SECRETS.items():
        assert name not in dump and value not in dump
    assert "SERVIN_CONFIG=/kept/for/the/child" in dump and "PATH=" in dump


def test_scanner_does_not_inherit_passphrases(
    settings: Settings,
    attest_layout: Path,
    key_store: KeyStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trustkit.attest.service import scan_and_attest

    image = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, image), "v1")
    key_store.generate(role="scanner", name="scanner")
    _export_secrets(monkeypatch)
    from fixtures.reports import retarget

    sample = Path(__file__).parent / "data" / "reports" / "trivy_alpine-39.json"
    report = tmp_path / "alpine.trivy.json"  # about no other image (issue 14)
    report.write_bytes(retarget(sample.read_bytes()))
    scanner = tmp_path / "nosy-scanner"
    scanner.write_text(f"#!/bin/sh\nenv > {tmp_path}/scanner-env\ncat {report}\n")
    scanner.chmod(0o755)
    scan_and_attest(settings, image, report=None, scanner_command=str(scanner), key_name=None)
    _assert_scrubbed((tmp_path / "scanner-env").read_text())


def test_credential_helper_does_not_inherit_passphrases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trustkit.registry.credentials import run_helper

    _export_secrets(monkeypatch)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-nosy"
    helper.write_text(
        f"#!/bin/sh\nenv > {tmp_path}/helper-env\n"
        'echo \'{"ServerURL": "r.example", "Username": "u", "Secret": "s"}\'\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert '"Username": "u"' in run_helper("nosy", "get", "r.example")
    _assert_scrubbed((tmp_path / "helper-env").read_text())


# --- pull --dest replaces what was planted in the destination layout ------------------------
@pytest.mark.registry
def test_pull_dest_replaces_planted_blobs(pipeline_world: PipelineWorld, tmp_path: Path) -> None:
    """Whoever can write the destination plants bytes under the image's digests (a backdoored
    layer, a manifest naming other layers) and a symlink to a file of their own; the old pull
    saw the names, skipped those blobs and reported success over the planted bytes."""
    import hashlib

    from trustkit.registry.layout import OCILayout

    image = pipeline_world.images["clean"]
    layout = OCILayout(tmp_path / "dest")
    layout.init()
    outside = tmp_path / "attacker-owned"
    outside.write_bytes(b"attacker-controlled, changed after the pull")
    for i, digest in enumerate(image.blobs):
        path = layout.blob_path(digest)
        if i == 0:
            path.symlink_to(outside)
        else:
            path.write_bytes(b"backdoored " + digest.encode())
    proc = subprocess.run(
        [*TRUSTKIT, "pull", pipeline_world.ref("clean"), "--dest", f"oci:{layout.path}:v1"],
        capture_output=True,
        env=pipeline_world.env(pipeline_world.settings),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for digest in image.blobs:
        path = layout.blob_path(digest)
        assert not path.is_symlink()
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert outside.read_bytes().startswith(b"attacker-controlled")
    assert layout.resolve("v1").digest == image.digest


def test_webhook_config_writable_by_others_is_refused(tmp_path: Path) -> None:
    """Its exempt_images and fail_open decide admission as much as a policy does."""
    from trustkit.webhook.config import WebhookConfig

    path = tmp_path / "webhook.yaml"
    path.write_text("exempt_images: ['**']\n")
    path.chmod(0o666)
    with pytest.raises(BadInputError, match=r"webhook config .* writable by other users"):
        WebhookConfig.load(path)
    path.chmod(0o644)
    assert WebhookConfig.load(path).exempt_images == ("**",)


@pytest.mark.parametrize(
    "check",
    [
        "trustkit.collections.model:check_signer_name",
        "trustkit.keys.model:check_name",
        "trustkit.policy.loader:check_policy_name",
        "trustkit.collections.model:check_digest",
        "trustkit.keys.model:check_keyid",
    ],
)
def test_names_with_a_trailing_newline_are_refused(check: str) -> None:
    """``$`` matches before a final newline: every name and id pattern is anchored with \\Z."""
    import importlib

    from trustkit.errors import TrustkitError

    module, name = check.split(":")
    validate = getattr(importlib.import_module(module), name)
    good = {
        "check_digest": "sha256:" + "a" * 64,
        "check_keyid": "a" * 64,
    }.get(name, "alice")
    validate(good)
    with pytest.raises(TrustkitError):
        validate(good + "\n")
