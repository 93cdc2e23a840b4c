"""The registry store against real docker-registry processes: trust data in the image's own
repository, read by clients that share nothing else, written by machines at the same moment,
crashes mid-publish, authenticated and TLS registries, and tampering done on the registry's
own storage directory. (The store contract suite runs against it too: tests/test_store_contract.)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.registry import Registry, Rewrite, TamperingProxy, use_registry
from fixtures.trust import digest_for

from trustkit.collections import add_signer, list_signed_tags, sign_tag, verify_tag
from trustkit.collections.bins import bin_for
from trustkit.collections.engine import use_bins
from trustkit.collections.model import RELEASES
from trustkit.config import Settings
from trustkit.errors import (
    FailureKind,
    StorageError,
    TrustkitError,
    UntrustedError,
)
from trustkit.keys import KeyStore
from trustkit.refs import parse
from trustkit.registry import client as registry_client
from trustkit.registry.location import RegistryLocation, open_registry_location
from trustkit.registry.model import OCI_MANIFEST, sha256_digest
from trustkit.registry.reserved import is_reserved_tag
from trustkit.services import Services
from trustkit.stores import LocalDirStore, oci, open_store
from trustkit.stores.oci import CLAIM_TAG, HEAD_TAG, OciOptions, OciStore

pytestmark = pytest.mark.registry

FAST = "registry://?settle=0.05&claim_ttl=2"
BITS = 4  # hashed bins: 16 per family, the same code paths as 512


def _writer(settings: Settings, registry: Registry, repo: str) -> tuple[Settings, KeyStore, str]:
    """A machine holding keys, its trust data in ``registry``'s repository ``repo``."""
    writer = settings.with_changes(trust_server=FAST)
    use_registry(writer, registry)
    keystore = KeyStore(writer)
    alice = keystore.generate(role="delegation", name="alice")
    gun = f"{registry.host}/{repo}"
    add_signer(writer, gun, "alice", [alice.public_key], keystore=keystore)
    return writer, keystore, gun


def _sign(settings: Settings, keystore: KeyStore, gun: str, tag: str) -> None:
    sign_tag(settings, parse(f"{gun}:{tag}"), digest=digest_for(tag), size=10, keystore=keystore)


def _fresh_client(writer: Settings, tmp_path: Path, name: str) -> Settings:
    """Another machine: its own trust dir, no keys; only the registry (and its login) shared."""
    return writer.with_changes(trust_dir=tmp_path / name)


def _repo_dir(registry: Registry, gun: str) -> Path:
    path = gun.split("/", 1)[1]
    return registry.root / "data" / "docker" / "registry" / "v2" / "repositories" / path


def _blob_file(registry: Registry, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return (
        registry.root
        / "data/docker/registry/v2/blobs/sha256"
        / hex_digest[:2]
        / hex_digest
        / "data"
    )


def _layer_digest(settings: Settings, gun: str, filename_suffix: str) -> str:
    store = open_store(settings.trust_store_url, services=Services(settings))
    assert isinstance(store, OciStore) or hasattr(store, "registry_store")
    oci = store if isinstance(store, OciStore) else store.registry_store  # type: ignore[attr-defined]
    location = oci.location(gun)
    manifest = json.loads(location.client.get_manifest(location.repo_path, HEAD_TAG).data)
    names = {
        layer["annotations"]["tuf.io/filename"]: layer["digest"] for layer in manifest["layers"]
    }
    newest = max(
        (n for n in names if n.endswith(filename_suffix)), key=lambda n: int(n.split(".")[0])
    )
    return str(names[newest])


# --- honest use -------------------------------------------------------------------------------
def test_trust_data_lives_in_the_image_repository(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, keystore, gun = _writer(settings, registry, repo_name)
    _sign(writer, keystore, gun, "v1")
    _sign(writer, keystore, gun, "v2")
    # a fresh client on another trust dir, nothing shared but the registry
    client = _fresh_client(writer, tmp_path, "elsewhere")
    assert not (client.trust_dir / "private").exists()
    assert verify_tag(client, parse(f"{gun}:v2")).digest == digest_for("v2")
    assert [t.tag for t in list_signed_tags(client, gun)] == ["v1", "v2"]
    # the registry holds it as an OCI artifact in the image's own repository, under a reserved
    # tag that image tag listings skip; no local trust directory was written
    location = open_registry_location(Services(writer).registries, parse(gun, default_tag=False))
    raw_tags = location.client.list_tags(location.repo_path)
    assert HEAD_TAG in raw_tags and CLAIM_TAG in raw_tags
    assert location.list_tags() == []
    manifest = json.loads(location.client.get_manifest(location.repo_path, HEAD_TAG).data)
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.tuf.metadata+json"
    }
    assert not (writer.trust_dir / "server").exists()


def test_default_store_is_each_images_registry(settings: Settings, tmp_path: Path) -> None:
    unset = Settings(trust_dir=tmp_path / "t")
    assert unset.trust_store_url == "registry://"
    assert unset.with_changes(trust_server="registry").trust_store_url == "registry://"
    assert unset.with_changes(trust_server="local").trust_store_url == (
        f"file://{tmp_path / 't' / 'server'}"
    )


def test_registries_json_names_another_trust_server(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer = settings.with_changes(trust_server="registry://")
    use_registry(writer, registry, extra={"trust_server": f"file://{tmp_path / 'elsewhere'}"})
    keystore = KeyStore(writer)
    alice = keystore.generate(role="delegation", name="alice")
    gun = f"{registry.host}/{repo_name}"
    add_signer(writer, gun, "alice", [alice.public_key], keystore=keystore)
    assert LocalDirStore(tmp_path / "elsewhere").exists(gun)
    location = open_registry_location(Services(writer).registries, parse(gun, default_tag=False))
    assert HEAD_TAG not in location.client.list_tags(location.repo_path)


def test_reserved_tags() -> None:
    assert is_reserved_tag("trustkit-tuf") and is_reserved_tag("trustkit-tuf-claim")
    assert is_reserved_tag("sha256-" + "a" * 64 + ".sig")
    assert is_reserved_tag("sha256-" + "a" * 64)
    assert not is_reserved_tag("v1") and not is_reserved_tag("latest")
    assert not is_reserved_tag("sha256-short")


def test_options_are_bounded() -> None:
    assert OciOptions.from_query("keep=2&settle=0.1", "x") == OciOptions(2, 0.1, 30.0)
    for bad in ("keep=0", "settle=-1", "claim_ttl=0.01", "nope=1", "keep=x"):
        with pytest.raises(TrustkitError):
            OciOptions.from_query(bad, "x")


def test_old_versions_are_pruned_every_root_kept(
    settings: Settings, registry: Registry, repo_name: str
) -> None:
    writer, keystore, gun = _writer(settings, registry, repo_name)
    writer = writer.with_changes(trust_server=f"{FAST}&keep=2")
    for n in range(5):
        _sign(writer, keystore, gun, f"v{n}")
    store = open_store(writer.trust_store_url, services=Services(writer))
    oci = store.registry_store  # type: ignore[attr-defined]
    location = oci.location(gun)
    manifest = json.loads(location.client.get_manifest(location.repo_path, HEAD_TAG).data)
    names = [layer["annotations"]["tuf.io/filename"] for layer in manifest["layers"]]
    snapshots = [n for n in names if n.endswith(".snapshot.json")]
    assert len(snapshots) == 2
    assert len([n for n in names if n.endswith(".timestamp.json")]) == 1
    assert "1.root.json" in names


@pytest.mark.timeout(300)
def test_two_machines_signing_at_the_same_moment_lose_nothing(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, _, gun = _writer(settings, registry, repo_name)
    # the second machine: another trust dir holding the same keys
    other = writer.with_changes(trust_dir=tmp_path / "machine-b")
    shutil.copytree(writer.trust_dir / "private", other.trust_dir / "private")
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def sign_ten(machine: Settings, name: str) -> None:
        keystore = KeyStore(machine)
        start.wait()
        try:
            for i in range(10):
                _sign(machine, keystore, gun, f"{name}-{i}")
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=sign_ten, args=(writer, "a")),
        threading.Thread(target=sign_ten, args=(other, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=280)
    assert failures == []
    signed = {t.tag for t in list_signed_tags(_fresh_client(writer, tmp_path, "c"), gun)}
    assert signed == {f"{m}-{i}" for m in "ab" for i in range(10)}


_CRASHING_WRITER = """
import os, signal, sys
from trustkit.registry import client as registry_client
from trustkit.collections import sign_tag
from trustkit.config import Settings
from trustkit.keys import KeyStore
from trustkit.refs import parse

crash_at, sent = int(sys.argv[1]), [0]
original = registry_client.RegistryClient._send

def send(self, method, *args, **kwargs):
    if method in ("PUT", "POST", "PATCH"):
        sent[0] += 1
        if sent[0] == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return original(self, method, *args, **kwargs)

registry_client.RegistryClient._send = send
settings = Settings.from_env()
sign_tag(settings, parse(sys.argv[2]), digest=sys.argv[3], size=10, keystore=KeyStore(settings))
print("published")
"""


@pytest.mark.timeout(400)
@pytest.mark.parametrize("layout", ["dct", "bins"])
def test_kill_9_at_each_step_of_a_publish_leaves_the_last_good_set(
    layout: str, settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, keystore, gun = _writer(settings, registry, repo_name)
    if layout == "bins":  # blobs, shards (untagged), the claim, the head, shard tags, release
        use_bins(writer, gun, bits=BITS, keystore=keystore)
    _sign(writer, keystore, gun, "v1")
    script = tmp_path / "writer.py"
    script.write_text(_CRASHING_WRITER)
    env = {
        **os.environ,
        "SERVIN_TRUST_DIR": str(writer.trust_dir),
        "SERVIN_CONFIG": str(writer.effective_config_dir),
        "SERVIN_CONTENT_TRUST_SERVER": FAST,
        "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE": str(writer.repository_passphrase),
        "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE": str(writer.root_passphrase),
    }
    crashed_at = []
    for step in range(1, 40):
        done = subprocess.run(
            [sys.executable, str(script), str(step), f"{gun}:v2", digest_for("v2")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0:
            assert "published" in done.stdout
            break
        assert done.returncode == -9, done.stderr
        crashed_at.append(step)
        # the last good set is readable by a fresh client, with or without v2 (the head moves
        # in one PUT), and never half of one
        client = _fresh_client(writer, tmp_path, f"after-{step}")
        assert verify_tag(client, parse(f"{gun}:v1")).digest == digest_for("v1")
    else:
        pytest.fail("the writer never got through")
    assert len(crashed_at) >= 5  # blob uploads, the claim, the head, the release
    client = _fresh_client(writer, tmp_path, "final")
    assert verify_tag(client, parse(f"{gun}:v2")).digest == digest_for("v2")


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry", "tls_registry"])
def test_authenticated_and_tls_registries(
    kind: str,
    request: pytest.FixtureRequest,
    settings: Settings,
    repo_name: str,
    tmp_path: Path,
) -> None:
    reg: Registry = request.getfixturevalue(kind)
    writer, keystore, gun = _writer(settings, reg, repo_name)
    _sign(writer, keystore, gun, "v1")
    client = _fresh_client(writer, tmp_path, "reader")
    assert verify_tag(client, parse(f"{gun}:v1")).digest == digest_for("v1")
    if reg.username:
        # without the login, the registry refuses: trust data has the image's access scope
        anonymous = client.with_changes(config_dir=tmp_path / "no-login")
        if reg.ca_file is None:
            with pytest.raises(TrustkitError):
                verify_tag(anonymous, parse(f"{gun}:v1"))


# --- tampering with the registry's storage ------------------------------------------------
def _storage_case(
    settings: Settings, registry: Registry, repo_name: str
) -> tuple[Settings, KeyStore, str]:
    writer, keystore, gun = _writer(settings, registry, repo_name)
    _sign(writer, keystore, gun, "v1")
    return writer, keystore, gun


def _refused(client: Settings, gun: str, tag: str = "v1") -> TrustkitError:
    with pytest.raises(TrustkitError) as caught:
        verify_tag(client, parse(f"{gun}:{tag}"))
    line = caught.value.one_line()
    assert "\n" not in line and gun in line
    return caught.value


def _assert_refused_as_tampered(writer: Settings, tmp_path: Path, gun: str) -> None:
    """A fresh client refuses: a file does not match the hash or length the head lists."""
    error = _refused(_fresh_client(writer, tmp_path, "fresh"), gun)
    assert isinstance(error, UntrustedError) and error.kind is FailureKind.TAMPERED
    assert "hash or length" in error.one_line()


def test_rollback_by_restoring_old_registry_storage(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, keystore, gun = _storage_case(settings, registry, repo_name)
    saved = tmp_path / "saved-repository"
    shutil.copytree(_repo_dir(registry, gun), saved)
    _sign(writer, keystore, gun, "v2")
    client = _fresh_client(writer, tmp_path, "warm")
    verify_tag(client, parse(f"{gun}:v2"))  # this client saw the newer set
    shutil.rmtree(_repo_dir(registry, gun))
    shutil.copytree(saved, _repo_dir(registry, gun))
    error = _refused(client, gun)
    assert isinstance(error, UntrustedError) and error.kind is FailureKind.ROLLED_BACK


def test_swapped_blob_in_storage(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, _, gun = _storage_case(settings, registry, repo_name)
    # the snapshot: small files (roots, targets, releases here) also travel inline in the head,
    # and a client reads those copies (hashed to the same digests), never the stored blobs
    blob = _blob_file(registry, _layer_digest(writer, gun, ".snapshot.json"))
    data = blob.read_bytes()
    assert b'"_type":"snapshot"' in data
    blob.write_bytes(data.replace(b'"_type":"snapshot"', b'"_type":"snapshoT"'))
    _assert_refused_as_tampered(writer, tmp_path, gun)


def test_deleted_metadata_in_storage(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, _, gun = _storage_case(settings, registry, repo_name)
    blob = _blob_file(registry, _layer_digest(writer, gun, ".snapshot.json"))
    blob.unlink()
    error = _refused(_fresh_client(writer, tmp_path, "fresh"), gun)
    assert isinstance(error, StorageError | UntrustedError)
    assert not isinstance(error, UntrustedError) or error.kind is not FailureKind.UNTRUSTED


def test_endless_metadata_manifest_through_a_tampering_proxy(
    settings: Settings,
    registry: Registry,
    repo_name: str,
    tmp_path: Path,
    tampering_proxy: Callable[[str, Rewrite], TamperingProxy],
) -> None:
    # docker-registry hashes manifests it serves, so a proxy pads the metadata manifest
    writer = settings.with_changes(trust_server=f"oci://{registry.host}/central?settle=0.05")
    keystore = KeyStore(writer)
    alice = keystore.generate(role="delegation", name="alice")
    gun = f"registry.example/{repo_name}"
    add_signer(writer, gun, "alice", [alice.public_key], keystore=keystore)
    _sign(writer, keystore, gun, "v1")

    def pad(method: str, path: str, body: bytes) -> bytes | None:
        if method == "GET" and path.endswith(f"/manifests/{HEAD_TAG}"):
            return body + b" " * (5 * 1024 * 1024)
        return None

    proxy = tampering_proxy(registry.url, pad)
    client = _fresh_client(writer, tmp_path, "fresh").with_changes(
        trust_server=f"oci://{proxy.host}/central"
    )
    error = _refused(client, gun)
    assert "larger than" in error.one_line()
    # honest, through the same proxy without padding, the same data verifies
    honest = tampering_proxy(registry.url, lambda m, p, b: None)
    reader = client.with_changes(trust_server=f"oci://{honest.host}/central")
    assert verify_tag(reader, parse(f"{gun}:v1")).digest == digest_for("v1")


# --- hashed bins: the head, bin shards, the first layout -------------------------------------
def _binned_writer(
    settings: Settings, registry: Registry, repo: str
) -> tuple[Settings, KeyStore, str]:
    writer, keystore, gun = _writer(settings, registry, repo)
    use_bins(writer, gun, bits=BITS, keystore=keystore)
    for tag in ("v1", "v2", "v3"):
        _sign(writer, keystore, gun, tag)
    return writer, keystore, gun


def _oci_store(settings: Settings) -> OciStore:
    store = open_store(settings.trust_store_url, services=Services(settings))
    return store if isinstance(store, OciStore) else store.registry_store  # type: ignore[attr-defined]


def _head(location: RegistryLocation) -> dict[str, object]:
    doc = json.loads(location.client.get_manifest(location.repo_path, HEAD_TAG).data)
    assert isinstance(doc, dict)
    return doc


def _layer_names(manifest: dict[str, object]) -> list[str]:
    layers = manifest["layers"]
    assert isinstance(layers, list)
    return [layer["annotations"]["tuf.io/filename"] for layer in layers]


def _pins(manifest: dict[str, object]) -> dict[str, str]:
    annotations = manifest["annotations"]
    assert isinstance(annotations, dict)
    pins = json.loads(annotations[oci.BINS_ANNOTATION])["pins"]
    assert isinstance(pins, dict)
    return pins


def _rewrite_head_in_first_layout(store: OciStore, gun: str) -> None:
    """The head as the first layout wrote it: every file a layer, no shards, nothing inline."""
    location = store.location(gun)
    files = {name: oci._Blob(d, n) for name, (d, n) in store.listed_files(gun).items()}
    location.client.put_manifest(
        location.repo_path, HEAD_TAG, oci._manifest(gun, files), OCI_MANIFEST
    )


def _record_requests(
    monkeypatch: pytest.MonkeyPatch, entry: Callable[[str, str], tuple[str, str]]
) -> list[tuple[str, str]]:
    """Every request the registry clients send from now on, as ``entry(method, url)``."""
    recorded: list[tuple[str, str]] = []
    original = registry_client.RegistryClient._send

    def send(self: object, method: str, url: object, *args: object, **kwargs: object) -> object:
        recorded.append(entry(method, str(url)))
        return original(self, method, url, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry_client.RegistryClient, "_send", send)
    return recorded


def test_bins_live_in_shards_a_cold_client_fetches_one(
    settings: Settings,
    registry: Registry,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer, _, gun = _binned_writer(settings, registry, repo_name)
    store = _oci_store(writer)
    location = store.location(gun)
    head = _head(location)
    names = _layer_names(head)
    # the head lists no bin; it pins the shards the bins live in, each tagged (kept from GC)
    assert names and not any(".bin-" in n for n in names)
    assert "1.root.json" in names and "targets%2Freleases.json" in "".join(names)
    pins = _pins(head)
    every = store.listed_files(gun)
    bins = [n for n in every if ".bin-" in n]
    assert len(bins) >= 2 * 3  # v1..v3: one releases bin and one alice bin each (at least)
    tags = location.client.list_tags(location.repo_path)
    for shard, digest in pins.items():
        tagged = location.client.get_manifest(location.repo_path, oci.SHARD_TAG_PREFIX + shard)
        assert sha256_digest(tagged.data) == digest
    assert location.list_tags() == [] and all(t.startswith("trustkit-tuf") for t in tags)
    # a tag's bins in both families share one shard
    releases_bin, alice_bin = bin_for(RELEASES, BITS, "v2"), bin_for("targets/alice", BITS, "v2")
    assert releases_bin != alice_bin
    assert oci._shard_of(f"1.{releases_bin.replace('/', '%2F')}.json", 64) == oci._shard_of(
        f"1.{alice_bin.replace('/', '%2F')}.json", 64
    )

    # a fresh client: the head, one shard (by the digest the head pins), never another
    fetched = _record_requests(monkeypatch, lambda method, url: (method, url))
    client = _fresh_client(writer, tmp_path, "cold")
    target = verify_tag(client, parse(f"{gun}:v2"))
    assert (target.digest, target.signers) == (digest_for("v2"), ("alice",))
    shard_reads = [u for m, u in fetched if "/manifests/sha256:" in u]
    assert len(shard_reads) == 1 and shard_reads[0].endswith(
        pins[oci._shard_of(f"1.{releases_bin.replace('/', '%2F')}.json", 64)]
    )
    blob_reads = [u for m, u in fetched if "/blobs/" in u]
    assert len(blob_reads) < len(every) // 2  # not every file: what this tag needs
    assert len(set(blob_reads)) == len(blob_reads)  # nothing fetched twice


def test_the_first_layout_stays_readable_and_is_migrated_on_publish(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, keystore, gun = _binned_writer(settings, registry, repo_name)
    store = _oci_store(writer)
    before = store.listed_files(gun)
    _rewrite_head_in_first_layout(store, gun)
    location = store.location(gun)
    old_head = _head(location)
    assert oci.BINS_ANNOTATION not in old_head["annotations"]  # type: ignore[operator]
    assert any(".bin-" in n for n in _layer_names(old_head))
    # a client on this code reads what the first layout published
    client = _fresh_client(writer, tmp_path, "reader")
    assert verify_tag(client, parse(f"{gun}:v3")).digest == digest_for("v3")
    assert store.listed_files(gun) == before
    # the next publish moves every bin into shards; nothing is lost
    _sign(writer, keystore, gun, "v4")
    new_head = _head(location)
    assert not any(".bin-" in n for n in _layer_names(new_head)) and _pins(new_head)
    after = store.listed_files(gun)
    assert {n for n in before if ".bin-" in n} <= set(after)
    signed = {t.tag for t in list_signed_tags(_fresh_client(writer, tmp_path, "later"), gun)}
    assert signed == {"v1", "v2", "v3", "v4"}


def _shard_of_tag(store: OciStore, gun: str, tag: str) -> tuple[str, str]:
    name = f"1.{bin_for(RELEASES, BITS, tag).replace('/', '%2F')}.json"
    shard = oci._shard_of(name, 64)
    return shard, _pins(_head(store.location(gun)))[shard]


def test_a_shard_swapped_in_storage_is_refused(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, _, gun = _binned_writer(settings, registry, repo_name)
    store = _oci_store(writer)
    _, digest = _shard_of_tag(store, gun, "v1")
    # the attacker points the shard at an older bin (another digest) in the registry's storage
    blob = _blob_file(registry, digest)
    doc = json.loads(blob.read_bytes())
    doc["layers"] = []  # the bins hidden
    blob.write_bytes(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
    _assert_refused_as_tampered(writer, tmp_path, gun)


def test_a_shard_deleted_from_storage_is_a_storage_error(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, _, gun = _binned_writer(settings, registry, repo_name)
    store = _oci_store(writer)
    _, digest = _shard_of_tag(store, gun, "v1")
    _blob_file(registry, digest).unlink()
    error = _refused(_fresh_client(writer, tmp_path, "fresh"), gun)
    assert isinstance(error, StorageError | UntrustedError)
    assert not isinstance(error, UntrustedError) or error.kind is not FailureKind.UNTRUSTED


def test_a_head_pinning_a_shard_with_foreign_bins_is_refused(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    # an attacker who can push: the shard of v1's bins pinned to a shard listing other bins
    writer, _, gun = _binned_writer(settings, registry, repo_name)
    store = _oci_store(writer)
    location = store.location(gun)
    shard, _ = _shard_of_tag(store, gun, "v1")
    head = _head(location)
    pins = _pins(head)
    other = next(s for s in pins if s != shard)
    pins[shard] = pins[other]
    head["annotations"][oci.BINS_ANNOTATION] = json.dumps(  # type: ignore[index]
        {"shards": 64, "pins": pins}
    )
    data = json.dumps(head, separators=(",", ":"), sort_keys=True).encode()
    location.client.put_manifest(location.repo_path, HEAD_TAG, data, OCI_MANIFEST)
    error = _refused(_fresh_client(writer, tmp_path, "fresh"), gun)
    assert isinstance(error, StorageError) and "does not belong" in error.one_line()


def test_an_inline_timestamp_that_is_not_its_blob_is_never_used(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, keystore, gun = _writer(settings, registry, repo_name)
    _sign(writer, keystore, gun, "v1")
    store = _oci_store(writer)
    old_timestamp = store.read(gun, "timestamp", None, limit=1 << 16)
    _sign(writer, keystore, gun, "v2")
    location = store.location(gun)
    head = _head(location)
    layers = head["layers"]
    assert isinstance(layers, list)
    current = next(
        la for la in layers if la["annotations"]["tuf.io/filename"].endswith(".timestamp.json")
    )
    assert "data" in current  # the head carries the timestamp
    # an attacker embeds the older timestamp under the current one's digest
    current["data"] = base64.b64encode(old_timestamp).decode()
    data = json.dumps(head, separators=(",", ":"), sort_keys=True).encode()
    location.client.put_manifest(location.repo_path, HEAD_TAG, data, OCI_MANIFEST)
    reader = _oci_store(_fresh_client(writer, tmp_path, "reader"))
    served = reader.read(gun, "timestamp", None, limit=1 << 16)
    assert served != old_timestamp and sha256_digest(served) == current["digest"]
    client = _fresh_client(writer, tmp_path, "client")
    assert verify_tag(client, parse(f"{gun}:v2")).digest == digest_for("v2")


def test_small_top_level_files_travel_inline_and_a_forged_copy_is_never_used(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, keystore, gun = _writer(settings, registry, repo_name)
    _sign(writer, keystore, gun, "v1")
    location = _oci_store(writer).location(gun)
    head = _head(location)
    layers = head["layers"]
    assert isinstance(layers, list)
    carried = {la["annotations"]["tuf.io/filename"] for la in layers if "data" in la}
    assert any(name.endswith(".root.json") for name in carried)
    assert any(name.endswith(".targets.json") for name in carried)
    assert not any(name.endswith(".snapshot.json") for name in carried)  # read by digest
    targets = next(
        la for la in layers if la["annotations"]["tuf.io/filename"].endswith(".targets.json")
    )
    # an attacker embeds other bytes under targets' digest: the copy is ignored, the blob read
    targets["data"] = base64.b64encode(b'{"signed":{"_type":"targets"}}').decode()
    data = json.dumps(head, separators=(",", ":"), sort_keys=True).encode()
    location.client.put_manifest(location.repo_path, HEAD_TAG, data, OCI_MANIFEST)
    client = _fresh_client(writer, tmp_path, "client")
    assert verify_tag(client, parse(f"{gun}:v1")).digest == digest_for("v1")


@pytest.mark.parametrize("mirror", ["honest", "lying"])
def test_shards_and_files_come_through_mirrors_by_digest(
    mirror: str,
    settings: Settings,
    registry: Registry,
    repo_name: str,
    tmp_path: Path,
    tampering_proxy: Callable[[str, Rewrite], TamperingProxy],
) -> None:
    writer, _, gun = _binned_writer(settings, registry, repo_name)

    def rewrite(method: str, path: str, body: bytes) -> bytes | None:
        by_digest = "/blobs/" in path or "/manifests/sha256:" in path
        return b"\0" * len(body) if mirror == "lying" and by_digest else None

    proxy = tampering_proxy(registry.url, rewrite)
    client = _fresh_client(writer, tmp_path, "behind-a-mirror")
    use_registry(client, registry, extra={"mirrors": [f"http://{proxy.host}"]})
    # a lying mirror's bytes fail their digests: the registry serves them instead
    assert verify_tag(client, parse(f"{gun}:v2")).digest == digest_for("v2")
    assert any("/manifests/sha256:" in hit for hit in proxy.hits)  # the shard, asked first
    assert any("/blobs/" in hit for hit in proxy.hits)
    # the head (a tag) is resolved by the registry itself, never by a mirror
    assert not any(hit.endswith(f"/manifests/{HEAD_TAG}") for hit in proxy.hits)


def test_old_bin_versions_are_pruned_in_their_shard(
    settings: Settings, registry: Registry, repo_name: str
) -> None:
    writer, keystore, gun = _writer(settings, registry, repo_name)
    writer = writer.with_changes(trust_server=f"{FAST}&keep=2")
    use_bins(writer, gun, bits=BITS, keystore=keystore)
    releases_bin = bin_for(RELEASES, BITS, "t0")
    same_bin = [f"t{n}" for n in range(500) if bin_for(RELEASES, BITS, f"t{n}") == releases_bin]
    for tag in same_bin[:4]:  # four new versions of one releases bin
        _sign(writer, keystore, gun, tag)
    store = _oci_store(writer)
    quoted = releases_bin.replace("/", "%2F")
    listed = store.listed_files(gun)
    versions = sorted(int(n.split(".")[0]) for n in listed if n.endswith(f".{quoted}.json"))
    assert len(versions) == 2 and versions[-1] >= 4
    client = writer.with_changes(trust_dir=writer.trust_dir / "elsewhere")
    assert {t.tag for t in list_signed_tags(client, gun)} == set(same_bin[:4])


def test_a_cold_client_reads_its_tags_bins_ahead_once_each(
    settings: Settings,
    registry: Registry,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer, _, gun = _binned_writer(settings, registry, repo_name)
    fetched = _record_requests(
        monkeypatch, lambda method, url: (threading.current_thread().name, url)
    )
    client = _fresh_client(writer, tmp_path, "cold")
    target = verify_tag(client, parse(f"{gun}:v2"))
    assert (target.digest, target.signers) == (digest_for("v2"), ("alice",))
    # the shard and the tag's bins in both families were fetched by the read-ahead, before
    # python-tuf asked for them, and nothing twice
    by_digest = [(who, url) for who, url in fetched if "/sha256:" in url]
    shard_reads = [who for who, url in by_digest if "/manifests/" in url]
    assert shard_reads and all(who.startswith("trustkit-oci") for who in shard_reads)
    urls = [url for _, url in by_digest]
    assert len(set(urls)) == len(urls)
    # without the hint, python-tuf's own read of the bin fetches the shard, one step later
    fetched.clear()
    monkeypatch.setattr(OciStore, "expect_targets", lambda self, gun, targets: None)
    verify_tag(_fresh_client(writer, tmp_path, "unhinted"), parse(f"{gun}:v2"))
    assert [who for who, url in fetched if "/manifests/sha256:" in url] == ["MainThread"]


def test_read_ahead_follows_tuf_hashing_and_a_hostile_head_steers_it_only_a_little() -> None:
    def role(bits: int) -> bytes:
        doc = {"signed": {"delegations": {"succinct_roles": {"bit_length": bits}}}}
        return json.dumps(doc).encode()

    def view(roles: dict[str, bytes]) -> oci._View:
        files = {name: oci._Blob(sha256_digest(data), len(data)) for name, data in roles.items()}
        files["1.timestamp.json"] = oci._Blob("sha256:" + "0" * 64, 1)
        return oci._View("sha256:" + "1" * 64, files, 1, "1.timestamp.json", inline=roles)

    honest = view({"1.targets%2Freleases.json": role(BITS)})
    suffix = bin_for(RELEASES, BITS, "v2").rsplit("-", 1)[1]
    assert oci._bin_suffixes(honest, ["v2"]) == {suffix}
    # a head inlining 32 roles of every bit length, asked about many tags: a bounded guess
    hostile = view({f"1.targets%2Fr{bits}.json": role(bits) for bits in range(1, 33)})
    many = [f"t{n}" for n in range(1000)]
    guessed = oci._bin_suffixes(hostile, many[: oci._MAX_EXPECTED_TARGETS])
    assert 0 < len(guessed) <= 2 * oci._MAX_EXPECTED_TARGETS
    # nonsense is no hint at all
    junk = view({"1.targets%2Fx.json": b'{"signed": [1]}', "2.targets%2Fy.json": role(99)})
    assert oci._bin_suffixes(junk, ["v2"]) == set()


def test_a_bin_swapped_in_storage_is_refused_though_read_ahead(
    settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    writer, _, gun = _binned_writer(settings, registry, repo_name)
    store = _oci_store(writer)
    files = store.listed_files(gun)
    name = max(
        (
            n
            for n in files
            if n.endswith(f".{bin_for(RELEASES, BITS, 'v1').replace('/', '%2F')}.json")
        ),
        key=lambda n: int(n.split(".", 1)[0]),
    )
    blob = _blob_file(registry, files[name][0])
    data = blob.read_bytes()
    blob.write_bytes(data.replace(b'"_type":"targets"', b'"_type":"targetS"'))
    _assert_refused_as_tampered(writer, tmp_path, gun)
