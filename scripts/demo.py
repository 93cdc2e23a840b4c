"""The trustkit demo: sign on push, verify on pull, attest a scan, block by policy.

Runs against the defaults: a local registry (Debian's docker-registry on 127.0.0.1, an ephemeral
port) that is also the trust server: with SERVIN_CONTENT_TRUST_SERVER unset, each image's TUF
metadata lives in its own repository (the `trustkit-tuf` tag, ADR 0011), so a fresh client needs
nothing but the registry. Every step is a real `trustkit` command, printed before it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from demo_images import build_image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "examples" / "reports"
TRUSTKIT = [sys.executable, "-m", "trustkit"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (work / "registry-data").mkdir()
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {work / 'registry-data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "registry.log", "wb"),  # noqa: SIM115
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)  # noqa: S310
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("demo: docker-registry did not start; see registry.log")


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(args: list[str], env: dict[str, str], *, expect: int = 0, stdin: str | None = None) -> str:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ trustkit {shown}", flush=True)
    proc = subprocess.run(
        TRUSTKIT + args, env=env, input=stdin, capture_output=True, text=True, check=False
    )
    out = proc.stdout.rstrip()
    if out:
        print(out)
    if proc.stderr.strip():
        print(proc.stderr.rstrip())
    if proc.returncode != expect:
        raise SystemExit(
            f"demo: expected exit {expect}, got {proc.returncode} from: trustkit {shown}"
        )
    if expect:
        print(f"(exit {proc.returncode}, as expected)")
    return proc.stdout


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="trustkit-demo-"))
    registry, host = start_registry(work)
    try:
        env = dict(os.environ)
        env.pop("SERVIN_CONTENT_TRUST_SERVER", None)  # the default: the registry itself
        env.update(
            SERVIN_TRUST_DIR=str(work / "alice-trust"),
            SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE="demo-root-passphrase",
            SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE="demo-repository-passphrase",
            SERVIN_CONFIG=str(work / "servin"),
            SERVIN_POLICY_DIR=str(work / "policies"),
        )
        (work / "policies").mkdir()  # `policy create` adds to it in step 6
        repo = f"{host}/demo/app"
        layout = work / "images"
        build_image(layout, "v1", "app v1\n")
        build_image(layout, "v2", "app v2\n")
        build_image(layout, "evil", "not what was signed\n")
        print(
            f"demo workspace: {work}\nlocal registry: http://{host}\n"
            f"trust server: the registry itself ({repo}:trustkit-tuf)"
        )

        step("1. A signer key, and a trusted collection with alice as signer")
        run(["trust", "key", "generate", "alice", "--dir", str(work)], env)
        run(["trust", "signer", "add", "--key", str(work / "alice.pub"), "alice", repo], env)

        step("2. Sign on push: SERVIN_CONTENT_TRUST=1")
        signed = dict(env, SERVIN_CONTENT_TRUST="1")
        run(["push", f"oci:{layout}:v1", f"{repo}:v1"], signed)
        run(["push", f"oci:{layout}:v2", f"{repo}:v2"], signed)
        run(["trust", "inspect", "--pretty", repo], env)

        step("3. Rotate the snapshot key, then verify from a fresh client sharing only the registry")
        run(["trust", "key", "rotate", repo, "--role", "snapshot"], env)
        fresh = dict(env, SERVIN_TRUST_DIR=str(work / "fresh-client"))
        run(["trust", "verify", f"{repo}:v1"], fresh)

        step("4. Verify on pull; a tag overwritten in the registry is refused")
        run(["pull", f"{repo}:v1", "--dest", f"oci:{work / 'pulled'}:v1"], dict(fresh, SERVIN_CONTENT_TRUST="1"))
        run(["push", "--disable-content-trust", f"oci:{layout}:evil", f"{repo}:v1"], env)
        run(["pull", f"{repo}:v1"], dict(fresh, SERVIN_CONTENT_TRUST="1"), expect=1)
        run(["push", f"oci:{layout}:v1", f"{repo}:v1"], signed)  # put the signed content back

        step("5. Attest scan results (signed in-toto/DSSE, attached in the registry)")
        run(["trust", "key", "generate", "scanner", "--role", "scanner", "--dir", str(work)], env)
        run(["scan", "attest", f"{repo}:v1", "--report", str(REPORTS / "clean.trivy.json"), "--key", "scanner"], env)
        # the juice-shop findings as if Trivy had scanned v2 (a report naming another digest is refused)
        run(["scan", "attest", f"{repo}:v2", "--report", str(REPORTS / "app-v2.trivy.json"), "--key", "scanner"], env)
        run(["scan", "results", f"{repo}:v2"], env)

        step("6. Policy: block HIGH and above; the same verdict in the CI gate and the pull hook")
        # a scan counts for a policy only through a scanner key the policy names
        run(["policy", "create", "--severity", "HIGH", "--action", "BLOCK", "--require-signed",
             "--trusted-scanner", "scanner", "vulnerability-policy"], env)  # fmt: skip
        run(["gate", f"{repo}:v1"], signed)
        run(["gate", f"{repo}:v2"], signed, expect=1)
        request = json.dumps({"operation": "pull", "reference": f"{repo}:v2"})
        run(["hook", "pre-pull"], signed, stdin=request, expect=1)
        run(["pull", f"{repo}:v2"], signed, expect=1)

        print("\n\033[1mdemo: ok\033[0m — signed on push, verified on pull, attested, blocked by policy")
        return 0
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        if os.environ.get("TRUSTKIT_DEMO_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
