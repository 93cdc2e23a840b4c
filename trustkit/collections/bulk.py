"""Bulk signing: many tags in one publish, from a file or from what a registry holds.

A file is all or nothing: every line is checked before anything is signed, and the first bad
line refuses the whole file with its line number (a half-signed batch is the worst outcome of
a recovery). Both sources end in one ``sign_tags`` publish: one new version of each role
written, one snapshot and one timestamp, however many tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.collections.model import check_digest, check_size
from trustkit.errors import BadInputError, InputTooLargeError, TrustkitError

if TYPE_CHECKING:
    from trustkit.collections.engine import SignOutcome
    from trustkit.config import Settings
    from trustkit.keys import KeyStore
    from trustkit.registry.pool import RegistryPool
    from trustkit.services import Services

#: a file of ``TAG sha256:<hex> SIZE`` lines: 1,000,000 lines of the longest tags fit
MAX_SIGN_FILE_BYTES = 256 * 1024 * 1024
MAX_SIGN_FILE_LINES = 1_000_000

Entries = dict[str, tuple[str, int]]


def parse_sign_lines(data: bytes, source: str = "input") -> Entries:
    """``TAG sha256:<hex> SIZE`` per line (blank lines and ``#`` comments skipped) as
    tag -> (digest, size). Any malformed line, or a tag given twice, refuses everything."""
    from trustkit.refs import validate_tag

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{source} is not UTF-8 text ({exc.reason})") from None
    entries: Entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if number > MAX_SIGN_FILE_LINES:
            raise BadInputError(f"{source} has more than {MAX_SIGN_FILE_LINES} lines")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        try:
            if len(fields) != 3:
                raise BadInputError(f"expected 'TAG sha256:<hex> SIZE', got {len(fields)} field(s)")
            tag, digest, size_text = fields
            validate_tag(tag)
            check_digest(digest)
            if not size_text.isascii() or not size_text.isdigit():
                raise BadInputError(f"invalid size {size_text!r}: a whole number of bytes")
            size = check_size(int(size_text))
            if tag in entries:
                raise BadInputError(f"tag {tag} is given twice")
        except TrustkitError as exc:
            raise BadInputError(
                f"{source}, line {number}: {exc}; nothing was signed",
                hint="fix the line and sign the whole file again",
            ) from None
        entries[tag] = (digest, size)
    if not entries:
        raise BadInputError(f"{source} names no tags to sign")
    return entries


def read_sign_file(path: Path) -> Entries:
    """``parse_sign_lines`` of a file (``-``: standard input), bounded in size."""
    import sys

    from trustkit._fs import read_bounded

    if str(path) == "-":
        data = sys.stdin.buffer.read(MAX_SIGN_FILE_BYTES + 1)
        if len(data) > MAX_SIGN_FILE_BYTES:
            raise BadInputError(f"standard input is larger than {MAX_SIGN_FILE_BYTES} bytes")
        return parse_sign_lines(data, "standard input")
    try:
        data = read_bounded(path, MAX_SIGN_FILE_BYTES, what="sign file")
    except FileNotFoundError:
        raise BadInputError(f"sign file {path} does not exist") from None
    except InputTooLargeError as exc:
        raise BadInputError(str(exc)) from None
    return parse_sign_lines(data, str(path))


def registry_entries(registries: RegistryPool, repository: str) -> Entries:
    """Every image tag the registry holds for ``repository`` with the digest and size of the
    manifest it serves now (hashed here, never the registry's header); reserved tags (trust
    data, signatures) are skipped."""
    from trustkit.refs import parse_repository
    from trustkit.registry.location import open_registry_location
    from trustkit.registry.reserved import is_reserved_tag

    ref = parse_repository(repository)
    location = open_registry_location(registries, ref)
    try:
        entries: Entries = {}
        for tag in sorted(location.list_tags()):
            if is_reserved_tag(tag):
                continue
            descriptor = location.get_manifest(tag).descriptor
            entries[tag] = (descriptor.digest, descriptor.size)
    finally:
        location.close()
    if not entries:
        raise BadInputError(f"{repository} has no tags in its registry")
    return entries


def sign_many_or_propose(
    settings: Settings | Services,
    gun: str,
    entries: Mapping[str, tuple[str, int]],
    *,
    keystore: KeyStore | None = None,
) -> SignOutcome:
    """Sign every entry in one publish, or (a releases threshold above the keys held here)
    leave one pending change holding all of them."""
    from trustkit.collections.engine import SignOutcome, _sign_entries
    from trustkit.services import as_services

    outcome = SignOutcome([])
    outcome.roles = _sign_entries(as_services(settings), gun, entries, keystore, None, outcome)
    return outcome
