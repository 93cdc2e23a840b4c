"""A tag reference is judged on its own tag's evidence first (ADR 0016): the pipeline reads the
other tags of the digest (every bin of a hashed-bins collection) only when they could change the
verdict. These tests build real collections (local store, DCT layout, then hashed bins) with
several signers and several tags per digest, and compare every verdict with the one judged on
the full evidence; and they count the bins a pre-pull reads."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fixtures.trust import TrustedRepo, digest_for

from trustkit import hooks
from trustkit.collections import add_signer, sign_tags, trust_evidence
from trustkit.collections.bins import BIN_INFIX, bin_for
from trustkit.collections.client import forget_sessions
from trustkit.collections.engine import use_bins
from trustkit.collections.model import RELEASES
from trustkit.config import Settings
from trustkit.keys import KeyRecord, KeyStore
from trustkit.model import TrustEvidence
from trustkit.pipeline import check
from trustkit.pipeline.check import check_image
from trustkit.policy import Policy, load_policy_text
from trustkit.refs import parse
from trustkit.services import Services
from trustkit.stores.interface import metadata_filename
from trustkit.stores.local import LocalDirStore
from trustkit.verdict import Context, Verdict

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SIGNERS = ("alice", "bob", "carol")
CONTENTS = ("c0", "c1", "c2", "c3")


@dataclass
class World:
    repo: TrustedRepo
    keys: dict[str, KeyRecord]
    tags: dict[str, str]  # tag -> the digest the releases role holds for it


def _signer_settings(settings: Settings, tmp_path: Path, name: str) -> tuple[Settings, KeyStore]:
    """A signer's own machine: its key, plus the snapshot and timestamp keys to publish."""
    own = settings.with_changes(
        trust_dir=tmp_path / name, trust_server=f"file://{settings.local_server_dir}"
    )
    return own, KeyStore(own)


def _give_publishing_keys(admin: KeyStore, to: KeyStore, gun: str) -> None:
    to.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for role in ("snapshot", "timestamp"):
        for record in admin.records(role=role, gun=gun):
            for suffix in (".key", ".json"):
                name = f"{record.keyid}{suffix}"
                shutil.copy2(admin.directory / name, to.directory / name)


def build_world(seed: int, trusted_repo: TrustedRepo, settings: Settings, tmp_path: Path) -> World:
    """Tags over a few contents, each signed by a random non-empty set of signers (one publish
    per signer); now and then a signer records another digest than the release (a record
    that must not count)."""
    rng = random.Random(seed)
    repo, gun = trusted_repo, trusted_repo.gun
    machines: dict[str, tuple[Settings, KeyStore]] = {"alice": (settings, repo.keystore)}
    keys = {"alice": repo.signer}
    for name in SIGNERS[1:]:
        own, store = _signer_settings(settings, tmp_path, name)
        keys[name] = store.generate(role="delegation", name=name)
        add_signer(settings, gun, name, [keys[name].public_key], keystore=repo.keystore)
        _give_publishing_keys(repo.keystore, store, gun)
        machines[name] = (own, store)
    wanted = {f"t{i}": digest_for(rng.choice(CONTENTS)) for i in range(8)}
    by_signer: dict[str, dict[str, tuple[str, int]]] = {name: {} for name in SIGNERS}
    for tag, digest in wanted.items():
        for name in rng.sample(SIGNERS, rng.randint(1, len(SIGNERS))):
            recorded = digest if rng.random() > 0.15 else digest_for(f"stale-{tag}")
            by_signer[name][tag] = (recorded, 100)
    tags: dict[str, str] = {}
    for name in SIGNERS:
        if by_signer[name]:
            own, store = machines[name]
            sign_tags(own, gun, by_signer[name], keystore=store)
            tags.update({t: d for t, (d, _) in by_signer[name].items()})  # last writer wins
    forget_sessions()
    return World(repo, keys, tags)


def move_onto_bins(world: World, tmp_path: Path) -> None:
    """Every signer's key in the admin's key store (``use_bins`` re-signs every role)."""
    admin = world.repo.keystore
    for name in SIGNERS[1:]:
        theirs = tmp_path / name / "private"
        for path in theirs.iterdir():
            if not (admin.directory / path.name).exists():
                shutil.copy2(path, admin.directory / path.name)
    settings = world.repo.settings
    use_bins(settings, world.repo.gun, bits=2, keystore=KeyStore(settings))
    forget_sessions()


def random_policy(rng: random.Random, index: int, world: World) -> Policy:
    repo = world.repo.ref.repository
    scope = rng.choice(
        [
            ["**"],
            [repo],
            [f"{repo}:t{rng.randrange(8)}"],
            [f"{repo}:t{rng.randrange(4)}*"],
            [f"{repo}@{digest_for(rng.choice(CONTENTS))}"],
            ["localhost:5000/other/**"],
        ]
    )
    exclude = rng.choice([[], [], [f"{repo}:t{rng.randrange(8)}"], [f"{repo}x"]])
    keyid = world.keys[rng.choice(SIGNERS)].keyid

    def signer_rule() -> str:
        names = rng.sample(SIGNERS, rng.randint(1, len(SIGNERS)))
        return rng.choice(
            [
                "require_signed: true",
                f"require_signed: {{signers: {names}, threshold: {rng.randint(1, len(names))}}}",
                f'require_signed: {{keys: ["{keyid}"]}}',  # quoted: hex digits may read as a number
            ]
        ).replace("'", "")

    signature = rng.choice(
        [
            signer_rule(),
            f"any_of: [{{{signer_rule()}}}, {{{signer_rule()}}}]",
            f"all_of: [{{{signer_rule()}}}, {{{signer_rule()}}}]",
        ]
    )
    return load_policy_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\n"
        f"name: p{index}\naction: {rng.choice(['BLOCK', 'WARN', 'AUDIT'])}\n"
        f"scope: {scope!r}\n{f'exclude: {exclude!r}' if exclude else ''}\n".replace("'", '"')
        + f"rules:\n  {signature}\n  require_scan: false\n"
    )


def decision(verdict: Verdict) -> dict[str, Any]:
    """Everything a verdict decides, and every reason it gives. Left out: the evidence it
    lists (``signers``, ``trust``) and the detail of a rule that passed, which name what was
    read; both are compared separately."""
    document = verdict.to_dict()
    for outcome in document["policies"]:
        for rule in outcome["rules"]:
            if rule["passed"]:
                rule.pop("detail")
    document.pop("signers")
    document.pop("trust", None)
    return document


def references(world: World, rng: random.Random) -> Iterator[str]:
    repo = world.repo.ref.repository
    for tag, digest in world.tags.items():
        yield f"{repo}:{tag}"
        yield f"{repo}:{tag}@{digest}"
    yield f"{repo}:t0@{digest_for('elsewhere')}"  # a digest the tag is not signed at
    yield f"{repo}:never-signed"
    for content in CONTENTS:
        yield f"{repo}@{digest_for(content)}"
    for _ in range(4):
        yield f"{repo}:{rng.choice(list(world.tags))}"


def every_tag_of_the_digest(settings: Any, ref: Any, *, every_tag: bool = True) -> TrustEvidence:
    return trust_evidence(settings, ref, every_tag=True)


def compare_with_full_evidence(world: World, seed: int) -> int:
    """Judge every reference under random policies both ways; returns how many verdicts were
    reached on the tag's own evidence alone."""
    rng = random.Random(seed * 7919)
    settings = world.repo.settings
    services = Services(settings)
    policies = [random_policy(rng, i, world) for i in range(10)]
    own_only = 0
    try:
        for reference in references(world, rng):
            for _ in range(4):
                chosen = rng.sample(policies, rng.randint(0, 3))
                # an unsigned tag without content trust resolves its digest in a registry
                require_trust = rng.random() < 0.5 or reference.endswith(":never-signed")
                kwargs: dict[str, Any] = {
                    "context": Context.PULL,
                    "policies": chosen,
                    "now": NOW,
                    "require_trust": require_trust,
                }
                lazy = check_image(services, reference, **kwargs)
                full_evidence = trust_evidence(services, parse(reference))
                assert full_evidence.complete
                with pytest.MonkeyPatch.context() as patch:  # the pipeline reading every tag
                    patch.setattr(check, "check_trust", every_tag_of_the_digest)
                    full = check_image(services, reference, **kwargs)
                why = f"{reference} under {[p.name for p in chosen]} (seed {seed})"
                assert decision(lazy) == decision(full), why
                if lazy.evidence is not None and not lazy.evidence.complete:
                    own_only += 1
                    ref = parse(reference)
                    assert lazy.evidence.tags == (ref.tag,), why
                    assert set(lazy.signers) <= set(full.signers), why
                    ids = {k for s in lazy.evidence.signers for k in s.keyids}
                    assert ids <= full_evidence.keyids, why
                elif lazy.evidence is not None and full.evidence is not None:
                    assert lazy.to_dict() == full.to_dict(), why
    finally:
        services.close()
    return own_only


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_verdicts_on_a_tags_own_evidence_equal_the_full_evidence_verdicts(
    seed: int, trusted_repo: TrustedRepo, settings: Settings, tmp_path: Path
) -> None:
    world = build_world(seed, trusted_repo, settings, tmp_path)
    shared = [d for d in CONTENTS if list(world.tags.values()).count(digest_for(d)) > 1]
    assert shared, "the collection must hold several tags per digest"
    dct_shortcuts = compare_with_full_evidence(world, seed)
    move_onto_bins(world, tmp_path)
    bins_shortcuts = compare_with_full_evidence(world, seed)
    # the comparison is not vacuous: many verdicts were reached without the other tags
    assert dct_shortcuts > 10 and bins_shortcuts > 10


# --- what a pre-pull reads -------------------------------------------------------------------
@pytest.fixture
def counted_bins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The bins every local store reads, by name."""
    read: list[str] = []
    original = LocalDirStore.read

    def counting(
        self: LocalDirStore, gun: str, role: str, version: int | None, *, limit: int
    ) -> bytes:
        if BIN_INFIX + "-" in role:
            read.append(role)
        return original(self, gun, role, version, limit=limit)

    monkeypatch.setattr(LocalDirStore, "read", counting)
    return read


BINNED_TAGS = [f"t{i}" for i in range(64)]
EVERY_RELEASES_BIN = {bin_for(RELEASES, 8, tag) for tag in BINNED_TAGS}


@pytest.fixture
def binned_collection(signed_repo: TrustedRepo) -> TrustedRepo:
    """64 tags, pairs at one digest, on 256 bins (so a tag and its twin sit in other bins)."""
    entries = {tag: (digest_for(f"c{i // 2}"), 100) for i, tag in enumerate(BINNED_TAGS)}
    sign_tags(signed_repo.settings, signed_repo.gun, entries, keystore=signed_repo.keystore)
    use_bins(signed_repo.settings, signed_repo.gun, bits=8, keystore=signed_repo.keystore)
    return signed_repo


def pre_pull(client: Settings, reference: str, policy: str | None = None) -> hooks.HookAnswer:
    if policy is not None:
        directory = client.effective_policy_dir
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "p.yaml").write_text(
            "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: p\naction: BLOCK\n" + policy
        )
    forget_sessions()  # a new process
    request = hooks.HookRequest.from_mapping({"operation": "pull", "reference": reference})
    return hooks.run_hook(client, "pre-pull", request)


def test_pre_pull_of_a_tag_reads_its_own_bins_only(
    binned_collection: TrustedRepo,
    fresh_trust_client: Callable[[str], Settings],
    counted_bins: list[str],
) -> None:
    repo = binned_collection.ref.repository
    answer = pre_pull(
        fresh_trust_client("plain"),
        f"{repo}:t7",
        "rules:\n  require_signed: true\n  require_scan: false\n",
    )
    assert answer.allow and answer.digest == digest_for("c3")
    # the tag's releases bin and alice's bin for it, of 2 x 256: O(1), not O(bins)
    assert set(counted_bins) == {bin_for(RELEASES, 8, "t7"), bin_for("targets/alice", 8, "t7")}
    assert len(counted_bins) <= 3  # alice's bin is read again for its signatures
    assert answer.verdict is not None and answer.verdict.evidence is not None
    assert answer.verdict.evidence.tags == ("t7",)


def test_pre_pull_reads_every_bin_when_a_policy_names_tags(
    binned_collection: TrustedRepo,
    fresh_trust_client: Callable[[str], Settings],
    counted_bins: list[str],
) -> None:
    """A policy scoped to t6 reaches t7 (same content): only every tag of the digest can say
    so, and the pull is refused as the policy demands of t6's content."""
    repo = binned_collection.ref.repository
    rules = "rules:\n  require_signed: {signers: [bob]}\n  require_scan: false\n"
    answer = pre_pull(fresh_trust_client("scoped"), f"{repo}:t7", f'scope: ["{repo}:t6"]\n{rules}')
    assert not answer.allow
    assert answer.verdict is not None and answer.verdict.evidence is not None
    assert answer.verdict.evidence.tags == ("t6", "t7")
    assert set(counted_bins) >= EVERY_RELEASES_BIN


def test_pre_pull_reads_every_bin_when_its_own_signers_do_not_suffice(
    binned_collection: TrustedRepo,
    fresh_trust_client: Callable[[str], Settings],
    counted_bins: list[str],
    settings: Settings,
    tmp_path: Path,
) -> None:
    """bob signed t6 only; a policy requiring bob is met for t7 through t6 (same content), as
    with the full evidence: the other bins are read, and only then."""
    gun, repo = binned_collection.gun, binned_collection.ref.repository
    own, bob_keys = _signer_settings(settings, tmp_path, "bob")
    bob = bob_keys.generate(role="delegation", name="bob")
    add_signer(settings, gun, "bob", [bob.public_key], keystore=binned_collection.keystore)
    _give_publishing_keys(binned_collection.keystore, bob_keys, gun)
    sign_tags(own, gun, {"t6": (digest_for("c3"), 100)}, keystore=bob_keys)
    rules = "rules:\n  require_signed: {signers: [bob]}\n  require_scan: false\n"
    answer = pre_pull(fresh_trust_client("bob"), f"{repo}:t7", rules)
    assert answer.allow, answer.reasons
    assert answer.verdict is not None and answer.verdict.evidence is not None
    assert answer.verdict.evidence.complete and "bob" in answer.verdict.signers
    assert set(counted_bins) >= EVERY_RELEASES_BIN
    counted_bins.clear()
    assert not pre_pull(fresh_trust_client("other"), f"{repo}:t9", rules).allow
    assert set(counted_bins) >= EVERY_RELEASES_BIN  # refused once every tag was read


# --- attacks on the shortcut -----------------------------------------------------------------
def test_an_excluded_tag_of_the_same_content_does_not_escape_a_policy(
    binned_collection: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    """Content signed as t6 and t7, pulled by t7, which the policy excludes: t6 still names it,
    so the policy applies (the tag's own evidence alone would have let it out)."""
    repo = binned_collection.ref.repository
    policy = (
        f'scope: ["{repo}"]\nexclude: ["{repo}:t7"]\n'
        "rules:\n  require_signed: {signers: [bob]}\n  require_scan: false\n"
    )
    answer = pre_pull(fresh_trust_client("exclude"), f"{repo}:t7", policy)
    assert not answer.allow
    assert any("bob" in r.message for r in answer.reasons)


def _tamper_releases_bin(repo: TrustedRepo, tag: str) -> str:
    """Flip one hex digit of ``tag``'s digest in the newest stored copy of its releases bin:
    the same length (the snapshot pins lengths of bins), no longer its signers' bytes."""
    role = bin_for(RELEASES, 8, tag)
    directory = repo.settings.local_server_dir
    suffix = "." + metadata_filename(role, None)
    files = sorted(directory.rglob(f"*{suffix}"), key=lambda p: int(p.name[: -len(suffix)] or 0))
    assert files, role
    raw = files[-1].read_bytes()
    hex_digest = digest_for(f"c{int(tag[1:]) // 2}").split(":")[1]
    flipped = ("0" if hex_digest[0] != "0" else "1") + hex_digest[1:]
    assert hex_digest.encode() in raw
    files[-1].write_bytes(raw.replace(hex_digest.encode(), flipped.encode()))
    return role


def test_a_tampered_bin_of_other_content_refuses_what_needs_it(
    binned_collection: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    """t9's releases bin is tampered with. A pull of t7 that needs nothing from it is judged
    on t7's own verified chain (as ``trust verify t7`` is); a pull whose policy names tags needs
    every bin and is refused; t9 itself is refused."""
    repo = binned_collection.ref.repository
    assert bin_for(RELEASES, 8, "t9") not in {bin_for(RELEASES, 8, t) for t in ("t6", "t7")}
    _tamper_releases_bin(binned_collection, "t9")
    signed_policy = "rules:\n  require_signed: true\n  require_scan: false\n"
    assert pre_pull(fresh_trust_client("own"), f"{repo}:t7", signed_policy).allow
    tagged = f'scope: ["{repo}:t6"]\n' + signed_policy
    refused = pre_pull(fresh_trust_client("tagged"), f"{repo}:t7", tagged)
    assert not refused.allow and refused.reasons[0].rule == "trust"
    assert "not validly signed" in refused.reasons[0].message
    assert not pre_pull(fresh_trust_client("t9"), f"{repo}:t9", signed_policy).allow
