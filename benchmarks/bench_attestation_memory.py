"""Peak memory of ``trustkit gate`` against unsigned fake attestations (issue 14).

A loopback docker-registry holds a tiny image with one genuine signed scan attestation and
``--fakes`` unsigned "attestations" of ``--fake-mib`` MiB each, listed in its ``.att`` manifest.
``trustkit gate`` (content trust off, a policy trusting the scanner's PEM key) runs in a child
process; its peak RSS (``ru_maxrss``) and exit status are printed. Run it against another
checkout with ``--trustkit-path DIR`` (e.g. ``git archive REV | tar -x -C DIR``) to compare.

    python benchmarks/bench_attestation_memory.py [--fakes 4] [--fake-mib 90] [--trustkit-path DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

from demo import start_registry  # noqa: E402
from fixtures.cosign import put_tiny_image  # noqa: E402

from trustkit.attest import oci  # noqa: E402
from trustkit.attest.dsse import ENVELOPE_MEDIA_TYPE  # noqa: E402
from trustkit.attest.service import attest_report  # noqa: E402
from trustkit.config import Settings  # noqa: E402
from trustkit.keys import CryptoSigner, public_key_pem  # noqa: E402
from trustkit.registry.artifacts import layered_manifest  # noqa: E402
from trustkit.registry.location import open_image_location  # noqa: E402
from trustkit.registry.model import Descriptor, sha256_digest  # noqa: E402

_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
"""


def _fake(size: int, salt: int) -> bytes:
    head = b'{"payloadType":"application/vnd.in-toto+json","payload":"'
    return head + b"A" * (size - len(head) - 10) + f'{salt:08d}"}}'.encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fakes", type=int, default=4)
    parser.add_argument("--fake-mib", type=int, default=90)
    parser.add_argument("--trustkit-path", type=Path, default=ROOT)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-att-mem-"))
    registry, host = start_registry(work)
    try:
        settings = Settings(trust_dir=work / "trust", content_trust=False)
        image = f"{host}/bench/app:v1"
        location = open_image_location(settings, image)
        subject = put_tiny_image(location, "v1")
        scanner = CryptoSigner.generate_ecdsa()
        report = {
            "SchemaVersion": 2,
            "ArtifactName": "app",
            "CreatedAt": datetime.now(UTC).isoformat(),
            "Results": [],
        }
        attest_report(settings, image, report_bytes=json.dumps(report).encode(), signer=scanner)
        tag = oci.att_tag(subject.digest)
        layers = oci._existing_layers(oci._get_optional(location, tag), tag)
        for i in range(args.fakes):
            data = _fake(args.fake_mib * 1024 * 1024, i)
            desc = Descriptor(ENVELOPE_MEDIA_TYPE, sha256_digest(data), len(data))
            location.upload_blob(desc, data)
            layers.append(desc)
            del data
        location.put_manifest(tag, layered_manifest(location, layers), oci.OCI_MANIFEST)
        location.close()

        pem = work / "scanner.pub"
        pem.write_bytes(public_key_pem(scanner.public_key))
        pem.chmod(0o600)
        policy = work / "scanned.yaml"
        policy.write_text(
            "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: scanned\naction: BLOCK\n"
            f"rules:\n  severity: CRITICAL\n  trusted_scanners: [{json.dumps(str(pem))}]\n"
        )
        policy.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVIN_")}
        env.update(
            PYTHONPATH=str(args.trustkit_path),
            SERVIN_TRUST_DIR=str(work / "gate-trust"),
            SERVIN_CONTENT_TRUST="0",
            SERVIN_POLICY_DIR=str(work / "no-policies"),
        )
        (work / "no-policies").mkdir()
        # the gate runs under a small wrapper: a child's ru_maxrss counts its parent's memory
        # at fork time, and this process held the fakes while uploading them
        gate = [sys.executable, "-m", "trustkit", "gate", "--policy", str(policy), image]
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, *gate],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        status, peak_kib = (int(x) for x in done.stderr.strip().splitlines()[-1].split())
        print(
            f"trustkit at {args.trustkit_path}: {args.fakes} fakes x {args.fake_mib} MiB: "
            f"gate exit {status}, peak RSS {peak_kib / 1024:.0f} MiB"
        )
        print((done.stdout + done.stderr).strip()[-600:])
        return 0
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
