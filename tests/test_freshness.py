"""Freshness made visible: expiry dates in ``trust inspect``, a one-line warning when verified
trust data expires within 3 days, an expired timestamp that names ``trust renew`` as the fix
(and verifies again after it), ``trust renew REPO...`` and ``--expiring-within``, and the
webhook's seconds-until-expiry gauge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fixtures.trust import TrustedRepo, digest_for

from trustkit.cli import main
from trustkit.collections import Expiries, expiry_dates, renew_expiring, sign_tag
from trustkit.collections.client import forget_sessions
from trustkit.config import Settings
from trustkit.webhook.metrics import MAX_EXPIRY_SERIES, Metrics

SHORT = Expiries(timestamp=timedelta(days=2))  # inside the 3-day warning window
EXPIRED = Expiries(timestamp=timedelta(seconds=-60))  # a timestamp already past its expiry


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    forget_sessions()  # each command is its own process in real life
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


def sign(repo: TrustedRepo, tag: str, expiries: Expiries | None = None) -> str:
    digest = digest_for(tag)
    sign_tag(repo.settings, repo.tag(tag), digest=digest, size=42, keystore=repo.keystore,
             expiries=expiries)  # fmt: skip
    return digest


@pytest.fixture
def cli_repo(trusted_repo: TrustedRepo, passphrase_env: Path) -> TrustedRepo:
    """trusted_repo, with the CLI's environment pointing at the same trust dir and store."""
    return trusted_repo


def test_inspect_shows_expiry_per_role(
    cli_repo: TrustedRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    sign(cli_repo, "v1")
    code, out, err = run(capsys, "trust", "inspect", str(cli_repo.ref))
    assert code == 0, err
    expires = json.loads(out)[0]["Expires"]
    assert {"root", "targets", "snapshot", "timestamp", "targets/releases"} <= set(expires)
    timestamp = datetime.fromisoformat(expires["timestamp"].replace("Z", "+00:00"))
    assert timedelta(days=13) < timestamp - datetime.now(UTC) <= timedelta(days=14)
    code, out, _ = run(capsys, "trust", "inspect", "--pretty", str(cli_repo.ref))
    assert code == 0
    assert f"Expiry dates for {cli_repo.ref}" in out
    timestamp_row = next(line for line in out.splitlines() if line.strip().startswith("timestamp"))
    assert expires["timestamp"] in timestamp_row and "days" in timestamp_row


def test_expiring_soon_warns_once_on_one_line(
    cli_repo: TrustedRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    sign(cli_repo, "v1", SHORT)
    code, out, err = run(capsys, "trust", "verify", f"{cli_repo.ref}:v1")
    assert code == 0 and out.strip() == digest_for("v1")
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith(f"trustkit: warning: trust data of {cli_repo.gun} expires in 1 d")
    assert f"'trustkit trust renew {cli_repo.gun}'" in warnings[0]
    # renewed: no warning any more
    code, _, err = run(capsys, "trust", "renew", str(cli_repo.ref))
    assert code == 0, err
    code, _, err = run(capsys, "trust", "verify", f"{cli_repo.ref}:v1")
    assert code == 0 and "warning" not in err


def test_fresh_data_draws_no_warning(
    cli_repo: TrustedRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    sign(cli_repo, "v1")
    code, _, err = run(capsys, "trust", "verify", f"{cli_repo.ref}:v1")
    assert code == 0 and err == ""


def test_expired_timestamp_names_renew_and_renew_fixes_it(
    cli_repo: TrustedRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """A freeze: the timestamp expired. Refused (exit 1) with 'trust renew REPO' as the fix;
    after the owner renews, the same client verifies again."""
    sign(cli_repo, "v1", EXPIRED)
    code, _, err = run(capsys, "trust", "verify", f"{cli_repo.ref}:v1")
    assert code == 1
    [line] = err.splitlines()
    assert "timestamp metadata of" in line and "expired" in line
    assert f"trustkit trust renew {cli_repo.gun}" in line
    # the expiry is readable even though verification refuses it
    dates = expiry_dates(cli_repo.settings, cli_repo.gun)
    assert dates["timestamp"] < datetime.now(UTC)
    code, out, err = run(capsys, "trust", "renew", str(cli_repo.ref))
    assert code == 0, err
    assert out.strip() == f"Renewed snapshot, timestamp of {cli_repo.ref}"
    code, out, err = run(capsys, "trust", "verify", f"{cli_repo.ref}:v1")
    assert code == 0 and out.strip() == digest_for("v1"), err


def test_pull_remedy_for_expired_trust_is_renew(
    cli_repo: TrustedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trustkit.pipeline.check import check_image
    from trustkit.verdict import Context

    sign(cli_repo, "v1", EXPIRED)
    forget_sessions()
    verdict = check_image(cli_repo.settings, f"{cli_repo.ref}:v1", context=Context.PULL)
    assert not verdict.allowed
    [reason] = verdict.reasons
    assert reason.remedy is not None and f"trustkit trust renew {cli_repo.gun}" in reason.remedy
    assert "sign it" not in reason.remedy  # it is signed: re-signing is not the fix


def test_renew_several_and_expiring_within(
    cli_repo: TrustedRepo,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trustkit.collections import add_signer
    from trustkit.refs import parse

    other = parse("localhost:5000/trusted/other", default_tag=False)
    add_signer(settings, other.gun, "alice", [cli_repo.signer.public_key],
               keystore=cli_repo.keystore)  # fmt: skip
    sign(cli_repo, "v1", SHORT)  # due within 3 days
    sign_tag(settings, other.with_tag("v1"), digest=digest_for("o"), size=1,
             keystore=cli_repo.keystore)  # fmt: skip  # fresh: 14 days
    # nothing due within an hour
    code, out, err = run(capsys, "trust", "renew", "--expiring-within", "1h")
    assert code == 0 and out == "", err
    assert f"{cli_repo.gun}: nothing expires within 1h" in err
    # within 3 days: only the short-lived collection is renewed
    code, out, err = run(capsys, "trust", "renew", "--expiring-within", "3d")
    assert code == 0, err
    assert out.splitlines() == [f"Renewed snapshot, timestamp of {cli_repo.gun}"]
    assert expiry_dates(settings, cli_repo.gun)["timestamp"] - datetime.now(UTC) > timedelta(
        days=13
    )
    # several REPOs by name: each renewed
    code, out, err = run(capsys, "trust", "renew", str(cli_repo.ref), str(other))
    assert code == 0, err
    assert len(out.splitlines()) == 2
    # an unknown REPO among them: the others are renewed, the failure named, exit 2
    code, out, err = run(capsys, "trust", "renew", str(cli_repo.ref), "localhost:5000/nope")
    assert code == 2 and len(out.splitlines()) == 1
    assert err.startswith("trustkit: localhost:5000/nope: no trust data")
    # neither REPO nor window is a usage error
    code, _, err = run(capsys, "trust", "renew")
    assert code == 2 and "--expiring-within" in err
    code, _, err = run(capsys, "trust", "renew", "--expiring-within", "soon")
    assert code == 2 and "duration" in err


def test_renew_expiring_renews_a_due_targets_role(trusted_repo: TrustedRepo) -> None:
    """A role other than snapshot/timestamp that is due is renewed too (its key is here)."""
    sign(trusted_repo, "v1", Expiries(targets=timedelta(days=1), delegation=timedelta(days=1)))
    report = renew_expiring(trusted_repo.settings, timedelta(days=3), [trusted_repo.gun])
    assert set(report.renewed[trusted_repo.gun]) >= {"snapshot", "timestamp", "targets/releases"}
    dates = expiry_dates(trusted_repo.settings, trusted_repo.gun)
    assert min(dates.values()) - datetime.now(UTC) > timedelta(days=3)


# --- /metrics ------------------------------------------------------------------------------
def test_metrics_export_seconds_until_expiry_per_collection() -> None:
    metrics = Metrics()
    metrics.clock = lambda: 1_000_000.0
    soon = datetime.fromtimestamp(1_000_000 + 3600, UTC)
    gone = datetime.fromtimestamp(1_000_000 - 60, UTC)
    metrics.trust_expires("registry.example/app", soon)
    metrics.trust_expires('registry.example/"odd"', gone)
    text = metrics.render()
    assert "# TYPE trustkit_trust_expiry_seconds gauge" in text
    assert 'trustkit_trust_expiry_seconds{collection="registry.example/app"} 3600' in text
    assert 'trustkit_trust_expiry_seconds{collection="registry.example/\\"odd\\""} -60' in text


def test_metrics_expiry_series_are_bounded() -> None:
    metrics = Metrics()
    when = datetime.now(UTC)
    for i in range(MAX_EXPIRY_SERIES + 50):
        metrics.trust_expires(f"r/app{i}", when)
    lines = [x for x in metrics.render().splitlines() if x.startswith("trustkit_trust_expiry")]
    assert len(lines) == MAX_EXPIRY_SERIES
    assert not any('"r/app0"' in x for x in lines)  # the least recently verified went first


def test_webhook_metrics_show_expiry_of_admitted_images(webhook_server: Any) -> None:
    """An admitted image's verified trust data: its collection's seconds until expiry."""
    from fixtures.webhook import TableChecker

    from trustkit.model import EvidenceSource, TrustEvidence
    from trustkit.verdict import Action, Context, Verdict

    image = "docker.io/library/busybox:1.32"
    expires = datetime.now(UTC) + timedelta(days=2)
    evidence = TrustEvidence(
        source=EvidenceSource.TUF_COLLECTION,
        checked=True,
        verified=True,
        digest="sha256:" + "a" * 64,
        expires=expires,
    )
    verdict = Verdict(image, Context.ADMISSION, True, Action.ALLOW, evidence.digest,
                      evidence=evidence)  # fmt: skip
    served = webhook_server(TableChecker({image: verdict}))
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "default",
            "object": {"spec": {"containers": [{"name": "c", "image": "busybox:1.32"}]}},
        },
    }
    reply = served.client().post("/validate", json=review)
    assert reply.status_code == 200 and reply.json()["response"]["allowed"] is True, reply.text
    metrics = served.client().get("/metrics").text
    [line] = [x for x in metrics.splitlines() if x.startswith("trustkit_trust_expiry_seconds{")]
    assert line.startswith('trustkit_trust_expiry_seconds{collection="docker.io/library/busybox"} ')
    seconds = float(line.rsplit(" ", 1)[1])
    assert 2 * 86400 - 120 < seconds <= 2 * 86400


def test_expiring_within_leaves_collections_it_only_verifies(
    cli_repo: TrustedRepo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A machine that verified a due collection but holds none of its keys: not a failure."""
    sign(cli_repo, "v1", SHORT)
    monkeypatch.setenv("SERVIN_TRUST_DIR", str(tmp_path / "verifier"))
    monkeypatch.setenv(
        "SERVIN_CONTENT_TRUST_SERVER", f"file://{cli_repo.settings.local_server_dir}"
    )
    code, _, err = run(capsys, "trust", "verify", f"{cli_repo.ref}:v1")
    assert code == 0 and "warning" in err
    code, out, err = run(capsys, "trust", "renew", "--expiring-within", "3d")
    assert code == 0 and out == "", err
    assert f"{cli_repo.gun}: due, but not renewable here" in err
    # named explicitly, the same is a failure (exit 2): the user asked for it
    code, _, err = run(capsys, "trust", "renew", "--expiring-within", "3d", str(cli_repo.ref))
    assert code == 2 and "cannot sign" in err
