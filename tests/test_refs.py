"""Image references: Docker's normalisation, rejection rules, and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustkit.errors import InvalidReferenceError
from trustkit.refs import ImageRef, gun_of, parse, parse_repository

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "expected", "gun"),
    [
        ("alpine", "docker.io/library/alpine:latest", "docker.io/library/alpine"),
        ("alpine:3.19", "docker.io/library/alpine:3.19", "docker.io/library/alpine"),
        ("library/alpine", "docker.io/library/alpine:latest", "docker.io/library/alpine"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7", "docker.io/bitnami/redis"),
        ("index.docker.io/foo/bar", "docker.io/foo/bar:latest", "docker.io/foo/bar"),
        ("localhost:5000/ns/app:v1", "localhost:5000/ns/app:v1", "localhost:5000/ns/app"),
        ("localhost/app", "localhost/app:latest", "localhost/app"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x"),
        ("[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000/x"),
        ("host.io/app@sha256:" + HEX, "host.io/app@sha256:" + HEX, "host.io/app"),
        (
            "ubuntu:22.04@sha256:" + HEX,
            "docker.io/library/ubuntu:22.04@sha256:" + HEX,
            "docker.io/library/ubuntu",
        ),
        ("a.b/c__d/e-f.g_h:T_1.x-y", "a.b/c__d/e-f.g_h:T_1.x-y", "a.b/c__d/e-f.g_h"),
    ],
)
def test_normalises_like_docker(text: str, expected: str, gun: str) -> None:
    ref = parse(text)
    assert str(ref) == expected
    assert ref.gun == gun
    assert gun_of(text) == gun


def test_digest_reference_has_no_default_tag() -> None:
    ref = parse("host.io/app@sha256:" + HEX)
    assert ref.tag is None
    assert ref.reference == "sha256:" + HEX


def test_familiar_form() -> None:
    assert parse("docker.io/library/alpine:3").familiar == "alpine:3"
    assert parse("docker.io/foo/bar").familiar == "foo/bar:latest"
    assert parse("localhost:5000/a/b:c").familiar == "localhost:5000/a/b:c"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("docker.io/Library/alpine", "lowercase"),
        ("alpine:", "invalid reference format"),
        ("alpine:-bad", "invalid reference format"),
        ("alpine:" + "t" * 129, "invalid reference format"),
        ("alpine@sha256:abc", "invalid"),
        ("alpine@md5:" + "a" * 32, "invalid digest"),
        ("alpine@sha256:" + "A" * 64, "invalid digest"),
        ("a//b", "invalid reference format"),
        ("-a/b", "invalid reference format"),
        ("a/b_", "invalid reference format"),
        ("a b", "invalid reference format"),
        (HEX, "64-byte hexadecimal"),
        ("x" * 5000, "too long"),
        ("a/" + "b" * 300, "255 characters"),
    ],
)
def test_rejects_bad_references(text: str, needle: str) -> None:
    with pytest.raises(InvalidReferenceError) as err:
        parse(text)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_parse_repository_refuses_tags() -> None:
    assert parse_repository("alpine").gun == "docker.io/library/alpine"
    with pytest.raises(InvalidReferenceError):
        parse_repository("alpine:3")


# --- property tests ------------------------------------------------------------------------
_component = st.from_regex(r"\A[a-z0-9]{1,8}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,8}){0,2}\Z")
_domain = st.one_of(
    st.just(None),
    st.from_regex(r"\A[a-z][a-z0-9-]{0,10}[a-z0-9]\.[a-z]{2,5}(?::[1-9][0-9]{0,4})?\Z"),
    st.just("localhost:5000"),
)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_digest = st.one_of(st.none(), st.from_regex(r"\Asha256:[0-9a-f]{64}\Z"))


@given(
    domain=_domain,
    path=st.lists(_component, min_size=1, max_size=3),
    tag=st.one_of(st.none(), _tag),
    digest=_digest,
)
def test_roundtrip(
    domain: str | None, path: list[str], tag: str | None, digest: str | None
) -> None:
    text = "/".join(path)
    if domain:
        text = f"{domain}/{text}"
    if tag:
        text += f":{tag}"
    if digest:
        text += f"@{digest}"
    ref = parse(text)
    # normalised form parses to itself: idempotence
    assert parse(str(ref)) == ref
    # familiar form parses back to the same reference
    assert parse(ref.familiar) == ref
    assert isinstance(ref, ImageRef)
    assert ref.digest == digest
    assert ref.tag == (tag or (None if digest else "latest"))


@given(st.text(max_size=300))
def test_never_crashes_on_garbage(text: str) -> None:
    try:
        ref = parse(text)
    except InvalidReferenceError as exc:
        assert str(exc)
    else:
        assert parse(str(ref)) == ref


# --- Docker's grammar is ASCII and anchored at the very end (issue 14) ---------------------
@pytest.mark.parametrize(
    "text",
    [
        "alpine\n",
        "alpine:3.19\n",
        "localhost:5000/app:v1\n",
        "host.io/app@sha256:" + HEX + "\n",
        "alpine:v\u0661",  # ARABIC-INDIC DIGIT ONE: \w without re.ASCII matches it
        "alpine:\u0663\u0664",
        "alpine:v1\u00e9",
        "alpine:\uff56\uff11",  # fullwidth "v1"
        "app:\u00b2",
    ],
)
def test_refuses_what_dockers_grammar_refuses(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse(text)


def test_tag_and_digest_validators_are_anchored_and_ascii() -> None:
    from trustkit.refs import validate_digest, validate_tag

    for tag in ("v1\n", "v\u0661", "\u00e9"):
        with pytest.raises(InvalidReferenceError):
            validate_tag(tag)
    with pytest.raises(InvalidReferenceError):
        validate_digest("sha256:" + HEX + "\n")
    with pytest.raises(InvalidReferenceError):
        parse(HEX + "\n")  # neither a reference nor a 64-hex identifier


_not_ascii_printable = st.characters(
    blacklist_categories=("Cs",),
).filter(lambda c: not (c.isascii() and c.isprintable() and not c.isspace()))


@given(
    domain=_domain,
    path=st.lists(_component, min_size=1, max_size=3),
    tag=st.one_of(st.none(), _tag),
    digest=_digest,
    bad=_not_ascii_printable,
    where=st.sampled_from(["end", "tag", "path"]),
)
def test_one_foreign_character_is_refused(
    domain: str | None,
    path: list[str],
    tag: str | None,
    digest: str | None,
    bad: str,
    where: str,
) -> None:
    """A valid reference with one whitespace, control or non-ASCII character put into it (at
    the end, into the tag, into the path) is never accepted: Docker's grammar is ASCII only."""
    if where == "tag":
        tag = (tag or "v") + bad
    elif where == "path":
        path = [*path[:-1], path[-1] + bad]
    text = "/".join(path)
    if domain:
        text = f"{domain}/{text}"
    if tag:
        text += f":{tag}"
    if digest:
        text += f"@{digest}"
    if where == "end":
        text += bad
    with pytest.raises(InvalidReferenceError):
        parse(text)


@given(st.text(max_size=300))
def test_whatever_parses_is_printable_ascii(text: str) -> None:
    try:
        parse(text)
    except InvalidReferenceError:
        return
    assert text.isascii() and text.isprintable() and not any(c.isspace() for c in text)
