"""Key unlock ahead (ADR 0012): the one derivation runs in the background while a command loads,
and is then used, never repeated; it never prompts and never weakens anything."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from fixtures.processes import run_probe, trustkit_env
from fixtures.trust import TrustedRepo, digest_for

import trustkit.keys.wrap as wrap_module
from trustkit.collections import verify_tag
from trustkit.config import Settings
from trustkit.errors import PassphraseError
from trustkit.keys import KeyRole, KeyStore, PassphraseSource

PAYLOAD = b"payload"


def _keys(store: KeyStore) -> list[str]:
    return [
        store.generate(role=role, gun="example.com/app").keyid
        for role in (KeyRole.TARGETS, KeyRole.SNAPSHOT, KeyRole.TIMESTAMP, KeyRole.DELEGATION)
    ]


class _GatedKdf:
    """cryptography's PBKDF2, held at a gate: the test decides when a derivation may finish."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()
        self.threads: list[str] = []
        real = wrap_module.PBKDF2HMAC

        outer = self

        class Gated:
            def __init__(self, *args: object) -> None:
                self._kdf = real(*args)  # type: ignore[arg-type]

            def derive(self, secret: bytes) -> bytes:
                outer.threads.append(threading.current_thread().name)
                outer.started.set()
                assert outer.gate.wait(30)
                return self._kdf.derive(secret)

        monkeypatch.setattr(wrap_module, "PBKDF2HMAC", Gated)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Callable[[], _GatedKdf]:
    """Installs the gated KDF (after the test's keys were made: making them derives too)."""
    return lambda: _GatedKdf(monkeypatch)


def test_unlock_ahead_derives_once_in_the_background(
    key_store: KeyStore, settings: Settings, gated: Callable[[], _GatedKdf]
) -> None:
    keyids = _keys(key_store)
    kdf = gated()
    fresh = KeyStore(settings)  # a new process
    fresh.unlock_ahead("targets")
    assert kdf.started.wait(30)
    assert kdf.threads[0] != threading.current_thread().name  # not on the caller's thread
    signed: list[bytes] = []
    unlocking = threading.Thread(
        target=lambda: signed.append(fresh.signer(keyids[0]).sign(PAYLOAD))
    )
    unlocking.start()
    unlocking.join(0.3)
    assert unlocking.is_alive()  # waits for the derivation under way instead of a second one
    kdf.gate.set()
    unlocking.join(30)
    assert signed
    for keyid in keyids:
        fresh.signer(keyid)
    assert len(kdf.threads) == 1 and fresh.keks.derivations == 0  # the one ahead was used


def test_unlock_ahead_by_directory_serves_any_key_store_of_the_process(
    key_store: KeyStore, settings: Settings, gated: Callable[[], _GatedKdf]
) -> None:
    """What ``trust sign`` does before the key store is even imported."""
    keyids = _keys(key_store)
    kdf = gated()
    kdf.gate.set()
    wrap_module.unlock_ahead(settings.private_dir, settings.repository_passphrase)
    fresh = KeyStore(settings)
    for keyid in keyids:
        fresh.signer(keyid).sign(PAYLOAD)
    assert len(kdf.threads) == 1 and fresh.keks.derivations == 0


def test_unlock_ahead_never_prompts_and_does_nothing_without_a_passphrase(
    key_store: KeyStore, settings: Settings, gated: Callable[[], _GatedKdf]
) -> None:
    _keys(key_store)
    kdf = gated()
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return settings.repository_passphrase or ""

    no_env = Settings(trust_dir=settings.trust_dir, config_dir=settings.config_dir)
    fresh = KeyStore(no_env, PassphraseSource(no_env, interactive=True, prompt=prompt))
    fresh.unlock_ahead("targets")
    assert asked == [] and kdf.threads == []


def test_wrong_passphrase_ahead_is_still_refused_and_dropped(
    key_store: KeyStore, settings: Settings, gated: Callable[[], _GatedKdf]
) -> None:
    keyids = _keys(key_store)
    kdf = gated()
    kdf.gate.set()
    wrong = settings.with_changes(repository_passphrase="not the passphrase")
    fresh = KeyStore(wrong)
    fresh.unlock_ahead("targets")
    with pytest.raises(PassphraseError):
        fresh.signer(keyids[0])
    with pytest.raises(PassphraseError):  # the wrong KEK was dropped, not kept: derived again
        fresh.signer(keyids[1])
    assert len(kdf.threads) == 2 and fresh.keks.derivations == 1


def test_unlock_ahead_without_keys_creates_nothing(
    settings: Settings, gated: Callable[[], _GatedKdf]
) -> None:
    kdf = gated()
    store = KeyStore(settings)
    store.unlock_ahead("targets")
    assert kdf.threads == []
    assert not (store.directory / "kdf.salt").exists()


KDF_PROBE = (
    "import sys, threading, runpy\n"
    "import trustkit.keys.wrap as wrap\n"
    "real = wrap.KekCache._derive\n"
    "def derive(self, *args):\n"
    "    sys.stderr.write('KDF tuf=%s main=%s\\n' % ('tuf.api.metadata' in sys.modules,\n"
    "                     threading.current_thread() is threading.main_thread()))\n"
    "    return real(self, *args)\n"
    "wrap.KekCache._derive = derive\n"
    "sys.argv = ['trustkit', *{argv!r}]\n"
    "runpy.run_module('trustkit', run_name='__main__')\n"
)


def test_trust_sign_process_derives_once_before_python_tuf_loads(signed_repo: TrustedRepo) -> None:
    """The whole process: one derivation, started off the main thread before python-tuf (and
    securesystemslib, the key store) loads, and the tag is signed."""
    settings = signed_repo.settings
    argv = ["trust", "sign", f"{signed_repo.ref}:v2", "--digest", digest_for("v2"), "--size", "1"]
    done = run_probe(KDF_PROBE, argv, trustkit_env(settings, content_trust=False))
    assert done.returncode == 0, done.stderr
    kdf = [line for line in done.stderr.splitlines() if line.startswith("KDF ")]
    assert kdf == ["KDF tuf=False main=False"], done.stderr
    assert verify_tag(settings, signed_repo.tag("v2")).digest == digest_for("v2")


AHEAD_PROBE = (
    "import sys, runpy\n"
    "import trustkit.keys.wrap as wrap\n"
    "real = wrap.KekCache.derive_ahead\n"
    "def derive_ahead(self, *args):\n"
    "    sys.stderr.write('AHEAD click=%s\\n' % ('click' in sys.modules))\n"
    "    return real(self, *args)\n"
    "wrap.KekCache.derive_ahead = derive_ahead\n"
    "sys.argv = ['trustkit', *{argv!r}]\n"
    "runpy.run_module('trustkit', run_name='__main__')\n"
)


def _probe_ahead(signed_repo: TrustedRepo, argv: list[str]) -> tuple[int, list[str], str]:
    done = run_probe(AHEAD_PROBE, argv, trustkit_env(signed_repo.settings, content_trust=False))
    ahead = [line for line in done.stderr.splitlines() if line.startswith("AHEAD ")]
    return done.returncode, ahead, done.stderr


def test_trust_sign_process_starts_the_derivation_before_click_loads(
    signed_repo: TrustedRepo,
) -> None:
    """Where the machine is busy the derivation is what a signing process waits for: it
    starts before the CLI framework loads (then the command's own start finds it under way)."""
    argv = ["trust", "sign", f"{signed_repo.ref}:v3", "--digest", digest_for("v3"), "--size", "1"]
    code, ahead, err = _probe_ahead(signed_repo, argv)
    assert code == 0, err
    assert ahead[0] == "AHEAD click=False", err
    assert verify_tag(signed_repo.settings, signed_repo.tag("v3")).digest == digest_for("v3")


def test_only_trust_sign_derives_before_parsing(signed_repo: TrustedRepo) -> None:
    """A verify derives nothing; a sign with a bad option fails as usual (exit 2), whatever
    was started ahead."""
    code, ahead, err = _probe_ahead(signed_repo, ["trust", "verify", f"{signed_repo.ref}:v1"])
    assert code == 0 and ahead == [], err
    code, _, err = _probe_ahead(signed_repo, ["trust", "sign", "--no-such-option"])
    assert code == 2 and "No such option" in err
