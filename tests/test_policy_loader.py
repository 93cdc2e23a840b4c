"""Policy files: strict loading with line numbers, the published schema, lookup order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trustkit import refs
from trustkit.attest.model import Severity
from trustkit.config import Settings
from trustkit.errors import PolicyFileError
from trustkit.keys._sslib import SSlibKey
from trustkit.policy import (
    ImageGlob,
    PolicyValidationError,
    load_policies,
    load_policy_file,
    load_policy_text,
    policy_schema,
)
from trustkit.verdict import Action, Context

REPO = Path(__file__).resolve().parents[1]

VALID = """\
apiVersion: trustkit.dev/v1
kind: ImagePolicy
name: vulnerability-policy
action: BLOCK
scope: ["alpine", "registry.example.com/team/*"]
exclude: ["registry.example.com/team/sandbox"]
rules:
  severity: HIGH
  ignore_unfixed: true
  max_scan_age: 7d
  denylist: [cve-2021-44228]
  allowlist:
    - id: CVE-2021-36159
      reason: not reachable
      owner: sec@example.com
      expires: 2026-01-01
  require_signed: {signers: [targets/alice, bob], threshold: 2}
"""


def test_valid_policy_loads_with_normalised_values() -> None:
    policy = load_policy_text(VALID)
    assert policy.name == "vulnerability-policy"
    assert policy.action is Action.BLOCK
    assert policy.severity is Severity.HIGH
    assert policy.require_scan is True  # default for BLOCK
    assert policy.denylist == ("CVE-2021-44228",)
    assert policy.allowlist[0].expires.isoformat() == "2026-01-01T00:00:00+00:00"
    assert policy.require_signed is not None
    assert policy.require_signed.signers == ("alice", "bob")
    assert policy.require_signed.threshold == 2
    assert policy.max_scan_age is not None and policy.max_scan_age.days == 7


def test_require_scan_defaults_off_for_warn() -> None:
    policy = load_policy_text(VALID.replace("action: BLOCK", "action: WARN"))
    assert policy.require_scan is False


@pytest.mark.parametrize(
    ("edit", "line", "fragment"),
    [
        (
            ("  ignore_unfixed: true", "  ignore_unfixed: true\n  colour: red"),
            10,
            "unknown key 'colour'",
        ),
        (("severity: HIGH", "severity: SEVERE"), 8, "'SEVERE' is not one of"),
        (("ignore_unfixed: true", "ignore_unfixed: [yes]"), 9, "expected boolean"),
        (("max_scan_age: 7d", "max_scan_age: 7 days"), 10, "use a number and a unit"),
        (("expires: 2026-01-01", "expires: 2026-02-30"), 16, "day is out of range"),
        (("expires: 2026-01-01", "expires: next year"), 16, "use a date YYYY-MM-DD"),
        (("expires: 2026-01-01", "expires: 9999-12-31T23:59:59-01:00"), 16, "expires"),
        (("expires: 2026-01-01", "expires: 2026-01-01T10:00:00"), 16, "use a date"),
        (("      owner: sec@example.com\n", ""), 13, "missing required key 'owner'"),
        (("action: BLOCK", "action: DENY"), 4, "'DENY' is not one of"),
        (("name: vulnerability-policy", "name: Vuln Policy"), 3, "use lowercase letters"),
        (("apiVersion: trustkit.dev/v1", "apiVersion: v2"), 1, "apiVersion must be"),
        (("threshold: 2", "threshold: 3"), 17, "could never be met"),
        (("threshold: 2}", "threshold: 2, quorum: 1}"), 17, "unknown key 'quorum'"),
        (("denylist: [cve-2021-44228]", "denylist: [CVE-2021-36159]"), 13, "both allowlisted"),
        (('scope: ["alpine",', 'scope: ["Bad Image!",'), 5, "image reference glob"),
        (('scope: ["alpine",', 'scope: ["ALPINE",'), 5, "invalid image pattern"),
        (("  severity: HIGH", "  severity: HIGH\n  severity: LOW"), 9, "duplicate key 'severity'"),
        (("kind: ImagePolicy", "kind: ImagePolicy\nextra: &a [1]\nmore: *a"), 3, "aliases"),
        (("  severity: HIGH", "  severity: HIGH\n\t"), 9, "invalid YAML"),
    ],
)
def test_malformed_policy_is_an_error_with_a_line(
    edit: tuple[str, str], line: int, fragment: str
) -> None:
    old, new = edit
    assert old in VALID
    text = VALID.replace(old, new, 1)
    with pytest.raises(PolicyValidationError) as info:
        load_policy_text(text, source=Path("p.yaml"))
    problems = info.value.problems
    assert any(fragment in p.message for p in problems), [p.message for p in problems]
    assert any(p.line == line for p in problems if fragment in p.message), problems
    assert str(info.value).startswith("p.yaml:")
    assert info.value.exit_code == 2


def test_every_problem_is_reported_in_line_order() -> None:
    text = VALID.replace("severity: HIGH", "severity: SEVERE").replace("action: BLOCK", "action: X")
    with pytest.raises(PolicyValidationError) as info:
        load_policy_text(text)
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines) and len(lines) == 2
    assert "(and 1 more problem(s))" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("name: [unclosed\n", "invalid YAML"),
        ("a: &x [*x]\n", "aliases"),
        ("<<: {a: 1}\n", "merge keys"),
        ("1: a\n", "plain strings"),
        ("a: !!python/object:os.system x\n", "unsupported YAML tag"),
        ("a: !!binary aGk=\n", "unsupported YAML tag"),
        ("---\na: 1\n---\nb: 2\n", "invalid YAML"),
        ("[" * 200 + "]" * 200, "nesting deeper"),
        ("a: \x1f\n", "invalid YAML"),
    ],
)
def test_yaml_shapes_policies_never_need_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        load_policy_text(text)
    assert fragment in str(info.value)


def test_published_schema_is_the_one_the_loader_uses() -> None:
    published = json.loads((REPO / "docs" / "policy.schema.json").read_text())
    assert published == policy_schema()


@pytest.mark.parametrize("path", sorted((REPO / "policies").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_are_valid(path: Path) -> None:
    policy = load_policy_file(path)
    assert policy.action in (Action.BLOCK, Action.WARN, Action.AUDIT)
    # the schema alone accepts them too (what editors and CI linters will use)
    import jsonschema

    jsonschema.validate(yaml.safe_load(path.read_text()), policy_schema())


def test_default_policy_is_what_the_docs_say() -> None:
    policy = load_policy_file(REPO / "policies" / "default.yaml")
    assert policy.name == "default"
    assert policy.action is Action.BLOCK
    assert policy.severity is Severity.CRITICAL and policy.ignore_unfixed
    assert policy.requires_signed and policy.require_scan
    assert policy.max_scan_age is not None and policy.max_scan_age.days == 30
    assert "default" in (REPO / "docs" / "policy.md").read_text()


def test_trusted_scanner_pem_is_resolved_relative_to_the_policy_file(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "scanner.pub").write_bytes(pem)
    policy_file = tmp_path / "p.yaml"
    keyid = "ab" * 32
    policy_file.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: p\naction: WARN\n"
        f"rules:\n  trusted_scanners: [keys/scanner.pub, {keyid}]\n"
    )
    policy = load_policy_file(policy_file)
    expected = SSlibKey.from_crypto(private.public_key()).keyid
    assert policy.trusted_keyids == {expected, keyid}
    assert [k.keyid for k in policy.scanner_keys()] == [expected]


def test_missing_trusted_scanner_file_is_an_error(tmp_path: Path) -> None:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: p\naction: WARN\n"
        "rules:\n  trusted_scanners: [missing.pub]\n"
    )
    with pytest.raises(PolicyValidationError) as info:
        load_policy_file(policy_file)
    assert info.value.problems[0].line == 6
    assert "neither a key id" in str(info.value)


def _write(directory: Path, name: str, body: str = "action: WARN\n") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\n{body}")
    return path


def test_load_policies_reads_the_policy_dir_then_extra_files(
    settings: Settings, tmp_path: Path
) -> None:
    directory = settings.effective_policy_dir
    assert directory == settings.trust_dir / "policies"
    assert load_policies(settings) == []  # no directory: no policies
    _write(directory, "b-second")
    _write(directory, "a-first")
    (directory / ".a-first.yaml.123.tmp").write_text("garbage: [")  # atomic-write leftovers
    (directory / "notes.txt").write_text("not a policy")
    extra = _write(tmp_path / "elsewhere", "extra")
    names = [p.name for p in load_policies(settings, extra_files=[extra])]
    assert names == ["a-first", "b-second", "extra"]
    # the same file named twice counts once
    again = [p.name for p in load_policies(settings, extra_files=[directory / "a-first.yaml"])]
    assert again == ["a-first", "b-second"]


def test_policy_dir_setting_overrides_the_default(settings: Settings, tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    _write(custom, "custom-one")
    names = [p.name for p in load_policies(settings.with_changes(policy_dir=custom))]
    assert names == ["custom-one"]


def test_one_bad_file_fails_the_whole_lookup(settings: Settings) -> None:
    directory = settings.effective_policy_dir
    _write(directory, "good")
    _write(directory, "bad", "action: BLOCK\nrules:\n  severity: hgih\n")
    with pytest.raises(PolicyFileError, match=r"bad\.yaml:6:13"):
        load_policies(settings)


def test_duplicate_policy_names_fail(settings: Settings, tmp_path: Path) -> None:
    _write(settings.effective_policy_dir, "same")
    other = _write(tmp_path / "x", "same")
    with pytest.raises(PolicyFileError, match="defined twice"):
        load_policies(settings, extra_files=[other])


def test_missing_extra_file_fails(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="not found"):
        load_policies(settings, extra_files=[tmp_path / "nope.yaml"])
    with pytest.raises(PolicyFileError, match="is a directory"):
        load_policies(settings, extra_files=[tmp_path])


def test_oversized_policy_file_fails(settings: Settings, tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(PolicyFileError, match="limit"):
        load_policies(settings, extra_files=[big])


@pytest.mark.parametrize(
    ("pattern", "reference", "expected"),
    [
        ("alpine", "docker.io/library/alpine:latest", True),
        ("alpine", "alpine:3.19", True),
        ("alpine", "docker.io/library/alpinex:1", False),
        ("alpine:3.*", "alpine:3.19", True),
        ("alpine:3.*", "alpine:edge", False),
        ("index.docker.io/library/alpine", "alpine", True),
        ("myorg/*", "docker.io/myorg/app:1", True),
        ("myorg/*", "docker.io/myorg/team/app:1", False),
        ("myorg/**", "docker.io/myorg/team/app:1", True),
        ("localhost:5000/team/*", "localhost:5000/team/app:1", True),
        ("localhost:5000/team/*", "localhost:5001/team/app:1", False),
        ("**/nginx", "quay.io/org/nginx:1", True),
        ("**/nginx", "nginx", True),
        ("**", "quay.io/a/b/c:d", True),
        ("*", "registry.example.com/x", True),
        (f"alpine@sha256:{'a' * 64}", f"alpine@sha256:{'a' * 64}", True),
        (f"alpine@sha256:{'a' * 64}", f"alpine@sha256:{'b' * 64}", False),
    ],
)
def test_scope_globs_use_docker_normalisation(pattern: str, reference: str, expected: bool) -> None:
    assert ImageGlob.compile(pattern).matches(refs.parse(reference)) is expected


def test_scope_exclude_and_contexts() -> None:
    policy = load_policy_text(
        VALID.replace("kind: ImagePolicy", "kind: ImagePolicy\ncontexts: [ci]")
    )
    assert policy.matches("registry.example.com/team/app:1", context=Context.CI)
    assert not policy.matches("registry.example.com/team/sandbox:1", context=Context.CI)
    assert not policy.matches("registry.example.com/team/app:1", context=Context.PULL)
    assert policy.matches("alpine", context="ci")
    assert not policy.matches("busybox", context="ci")


# --- property: the loader raises PolicyFileError or returns a Policy, nothing else ---------
_KEYS = [
    "apiVersion",
    "kind",
    "name",
    "action",
    "scope",
    "exclude",
    "rules",
    "severity",
    "ignore_unfixed",
    "allowlist",
    "denylist",
    "max_scan_age",
    "require_scan",
    "trusted_scanners",
    "require_signed",
    "signers",
    "threshold",
    "id",
    "reason",
    "owner",
    "expires",
    "images",
    "contexts",
    "description",
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.sampled_from(
        [
            "trustkit.dev/v1",
            "ImagePolicy",
            "BLOCK",
            "WARN",
            "HIGH",
            "7d",
            "2026-01-01",
            "CVE-2021-1234",
            "**",
            "alpine",
            "x" * 70,
            "",
            "2026-13-45",
            "9999999d",
        ]
    ),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS), children, max_size=6),
    ),
    max_leaves=25,
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=10),
    st.booleans(),
)
def test_loader_never_crashes_on_structured_input(data: dict[str, object], base: bool) -> None:
    document: dict[str, object] = (
        {"apiVersion": "trustkit.dev/v1", "kind": "ImagePolicy", "name": "p", "action": "BLOCK"}
        if base
        else {}
    )
    document.update(data)
    text = yaml.safe_dump(document)
    try:
        policy = load_policy_text(text)
    except PolicyFileError:
        return
    assert policy.action in (Action.BLOCK, Action.WARN, Action.AUDIT)


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_loader_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        policy = load_policy_text(text)
    except PolicyFileError as exc:
        assert exc.exit_code == 2 and str(exc)
        return
    assert policy.name
