"""Signature verification: cosign key-based and keyless Sigstore, in-process and whole-process.

    python benchmarks/bench_signatures.py [--runs 50] [--process-runs 10]

Against a real docker-registry on loopback, one image carrying a cosign signature (ECDSA P-256,
written by trustkit's push) and a keyless bundle from a private Sigstore instance
(tests/fixtures/sigstore.py):
- in-process: verify one cosign signature (material already read), one keyless bundle
  (sigstore-python: chain, SCT, inclusion proof, checkpoint, SET), and reading the material;
- whole process: `trustkit gate` with a `cosign_signed` policy vs `cosign verify --key` on the
  same image (cosign 2.5 from .peers/, transparency log off as the image has none).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.cosign import _peer_env  # noqa: E402
from fixtures.registry import make_oci_image, start_registry  # noqa: E402
from fixtures.sigstore import GITHUB_ISSUER, RELEASE_WORKFLOW, PrivateSigstore  # noqa: E402

from trustkit.config import Settings  # noqa: E402
from trustkit.keys import public_key_pem  # noqa: E402
from trustkit.pipeline.flows import push_image  # noqa: E402
from trustkit.refs import parse  # noqa: E402
from trustkit.registry.location import open_registry_location  # noqa: E402
from trustkit.services import Services  # noqa: E402
from trustkit.sources.cosign import (  # noqa: E402
    attach_bundle,
    load_cosign_key,
    read_material,
    signing_keyids,
    verify_with_keys,
)
from trustkit.sources.sigstore import (  # noqa: E402
    KeylessIdentity,
    load_trusted_root,
    verify_keyless,
)

ROOT_PASS = "bench-root-pass"
REPO_PASS = "bench-repo-pass"


def median_ms(action: Callable[[], object], runs: int) -> float:
    action()  # warm
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def process_ms(command: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall and CPU (user + system of the child) milliseconds of a whole process: on a
    loaded shared machine the CPU figure is the one that compares."""
    subprocess.run(command, env=env, capture_output=True, check=True)  # warm the page cache
    walls, cpus = [], []
    for _ in range(runs):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append(
            after.children_user - before.children_user + after.children_system
            - before.children_system
        )  # fmt: skip
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--process-runs", type=int, default=10)
    ns = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-signatures-"))
    registry = start_registry(work / "registry")
    try:
        settings = Settings(
            trust_dir=work / "trust",
            content_trust=True,
            trust_server="local",
            root_passphrase=ROOT_PASS,
            repository_passphrase=REPO_PASS,
            config_dir=work / "servin",
        )
        image = make_oci_image(work / "layout", "v1", (1024,))
        reference = f"{registry.host}/bench/signed:v1"
        digest = push_image(settings, image.oci, reference, sign=True).descriptor.digest
        services = Services(settings)
        ref = parse(reference)
        keyid = signing_keyids(services, ref)[0]
        pub = work / "release.pub"
        pub.write_bytes(public_key_pem(services.keys.get(keyid).public_key))
        key = load_cosign_key(str(pub))

        sigstore = PrivateSigstore(work / "sigstore")
        root = load_trusted_root(str(sigstore.trusted_root_path))
        wanted = KeylessIdentity(GITHUB_ISSUER, identity=RELEASE_WORKFLOW)
        location = open_registry_location(settings, ref)
        subject = location.get_manifest(digest).descriptor
        attach_bundle(location, subject, sigstore.sign_digest(digest))
        material = read_material(location, digest)
        assert verify_with_keys(material, [key]).verified
        assert verify_keyless(material, wanted, [root]).verified

        read = median_ms(lambda: read_material(location, digest), ns.runs)
        cosign_one = median_ms(lambda: verify_with_keys(material, [key]), ns.runs)
        keyless_one = median_ms(lambda: verify_keyless(material, wanted, [root]), ns.runs)
        location.close()

        policy = work / "cosign.yaml"
        policy.write_text(
            "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: release-key\naction: BLOCK\n"
            f"rules:\n  require_scan: false\n  cosign_signed: {{keys: [{pub}]}}\n"
        )
        env = {
            **os.environ,
            "HOME": str(work),
            "SERVIN_TRUST_DIR": str(settings.trust_dir),
            "SERVIN_CONTENT_TRUST": "0",
            "SERVIN_CONTENT_TRUST_SERVER": "local",
            "SERVIN_POLICY_DIR": str(work / "no-policies"),
        }
        (work / "no-policies").mkdir()
        trustkit = [str(ROOT / ".venv" / "bin" / "trustkit")]
        gate = [*trustkit, "gate", "--policy", str(policy), reference]
        assert subprocess.run(gate, env=env, capture_output=True, check=False).returncode == 0

        gate_ms = process_ms(gate, env, ns.process_runs)
        plain = work / "plain.yaml"  # the same gate with a policy that reads no signature
        plain.write_text(
            "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: plain\naction: BLOCK\n"
            "rules:\n  require_scan: false\n"
        )
        plain_ms = process_ms(
            [*trustkit, "gate", "--policy", str(plain), reference], env, ns.process_runs
        )
        cosign_path = _peer_env().get("COSIGN")
        cosign_ms: tuple[float, float] | None = None
        if cosign_path:
            cosign_env = {
                "PATH": "/usr/bin:/bin",
                "HOME": str(work),
                "TUF_ROOT": str(work / "tuf"),
                "SIGSTORE_NO_CACHE": "true",
                "HTTPS_PROXY": "http://127.0.0.1:9",
            }
            verify = [cosign_path, "verify", "--key", str(pub), "--insecure-ignore-tlog=true",
                      "--allow-http-registry", reference]  # fmt: skip
            cosign_ms = process_ms(verify, cosign_env, ns.process_runs)

        print("| measurement | median (ms) |")
        print("| --- | ---: |")
        print(f"| read the signature material of one digest (.sig, .att, referrers) | {read:.2f} |")
        print(f"| verify one cosign signature, in-process | {cosign_one:.3f} |")
        what = "verify one keyless bundle (chain, SCT, proof, checkpoint, SET)"
        print(f"| {what} | {keyless_one:.2f} |")
        what = "`trustkit gate` with a `cosign_signed` policy, whole process (wall / CPU)"
        print(f"| {what} | {gate_ms[0]:.0f} / {gate_ms[1]:.0f} |")
        what = "`trustkit gate`, a policy without signature rules (wall / CPU)"
        print(f"| {what} | {plain_ms[0]:.0f} / {plain_ms[1]:.0f} |")
        if cosign_ms is not None:
            what = "`cosign verify --key` on the same image, whole process (wall / CPU)"
            print(f"| {what} | {cosign_ms[0]:.0f} / {cosign_ms[1]:.0f} |")
    finally:
        registry.stop()


if __name__ == "__main__":
    main()
