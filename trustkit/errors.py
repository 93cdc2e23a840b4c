"""One exception tree for the whole library.

Split by what the caller can do about it, as python-tuf does: fix the input (exit 2), accept the
refusal (exit 1) or fix the environment (exit 3). Anything else that escapes is a bug: every entry
point's last-resort handler prints ``internal_error_line`` and exits 4. The CLI maps
``exit_code`` straight to the process exit status and prints ``str(error)`` on one line; nothing
here knows about the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
#: a bug in trustkit, caught by an entry point's last-resort handler; never 1 ("refused")
EXIT_INTERNAL = 4

#: where the last-resort handlers ask users to report a bug
REPORT_BUGS_AT = "docs/cli.md#reporting-a-bug"


class TrustkitError(Exception):
    """Base of every error trustkit raises on purpose."""

    exit_code: int = EXIT_ENVIRONMENT
    #: a short hint telling the user what to do next, printed after the message
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{text} ({self.hint})" if self.hint else text


# --- the caller gave us something wrong: exit 2 -------------------------------------------
class BadInputError(TrustkitError):
    """Malformed or unacceptable input: a reference, a file, an option, a document."""

    exit_code = EXIT_USAGE


class InvalidReferenceError(BadInputError):
    """An image reference that does not parse."""


class InputTooLargeError(BadInputError):
    """An untrusted input exceeded its size bound."""


class KeyStoreError(BadInputError):
    """A key that is missing, unreadable, badly protected or locked with another passphrase."""


class PassphraseError(KeyStoreError):
    """No passphrase available, or the wrong one."""


class UnknownRepositoryError(BadInputError):
    """No trust data exists for the named repository."""


class PolicyFileError(BadInputError):
    """A policy file that does not validate. Never treated as 'allow everything'."""


class MalformedAdmissionReviewError(BadInputError):
    """A webhook body that is JSON but not an AdmissionReview we can answer (HTTP 400)."""


class PolicyProblemLike(Protocol):
    """One located problem of a policy file (``trustkit.policy.rules.base.Problem``)."""

    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...
    @property
    def message(self) -> str: ...
    def render(self, source: str) -> str: ...


class PolicyValidationError(PolicyFileError):
    """A policy file with one or more problems; ``problems`` lists them all, in file order."""

    def __init__(self, source: str, problems: Sequence[PolicyProblemLike]) -> None:
        self.source = source
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.column)))
        first = self.problems[0].render(source)
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more problem(s))" if more else ""))


class ReportFormatError(BadInputError):
    """A scan report or VEX document that is malformed or of an unknown format."""


# --- trust was checked and refused: exit 1 ------------------------------------------------
class FailureKind(StrEnum):
    """Why trust was refused, as data: policy and renderers read this, never message text."""

    UNSIGNED = "unsigned"  # no collection, or the tag/digest is not in it (revoked included)
    EXPIRED = "expired"  # freeze attack or neglected renewal
    ROLLED_BACK = "rolled-back"  # older than what the client already trusted
    FORK = "fork"  # two different sets with the same version
    BAD_SIGNATURE = "bad-signature"  # unknown key, wrong key, tampered signed bytes
    BELOW_THRESHOLD = "below-threshold"  # fewer valid signatures than the role needs
    TAMPERED = "tampered"  # hashes/lengths that do not match (mix-and-match, swapped files)
    TAG_MOVED = "tag-moved"  # the registry's tag names content other than the signed digest
    DIGEST_MISMATCH = "digest-mismatch"  # bytes that do not hash to the trusted digest
    UNTRUSTED = "untrusted"  # anything else verification refused


class UntrustedError(TrustkitError):
    """Trust data, a signature or content failed verification. Fail closed."""

    exit_code = EXIT_REFUSED
    kind: FailureKind = FailureKind.UNTRUSTED


class NotSignedError(UntrustedError):
    """The tag has no valid signature in the trusted collection."""

    kind = FailureKind.UNSIGNED


class DigestMismatchError(UntrustedError):
    """Bytes did not hash to the digest they were trusted under."""

    kind = FailureKind.DIGEST_MISMATCH


class ExpiredMetadataError(UntrustedError):
    """Trust metadata past its expiry (freeze attack or neglected renewal)."""

    kind = FailureKind.EXPIRED


class RollbackError(UntrustedError):
    """Trust metadata older than what the client already trusted."""

    kind = FailureKind.ROLLED_BACK


class SignatureError(UntrustedError):
    """A signature that is missing, below threshold, or by an unknown key."""

    kind = FailureKind.BAD_SIGNATURE


class BelowThresholdError(SignatureError):
    """Fewer valid signatures than the role's threshold."""

    kind = FailureKind.BELOW_THRESHOLD


class ForkError(UntrustedError):
    """Two different metadata sets were shown with the same version: refuse, keep neither."""

    kind = FailureKind.FORK


class TamperedMetadataError(DigestMismatchError):
    """Metadata whose hash or length does not match what signed metadata says (a digest
    mismatch of trust metadata rather than of content)."""

    kind = FailureKind.TAMPERED


class TagMovedError(NotSignedError):
    """The registry's tag now names content other than the signed digest."""

    kind = FailureKind.TAG_MOVED


class TLSVerificationError(UntrustedError):
    """The registry's TLS certificate does not verify against the configured CAs."""


class StalePendingError(UntrustedError):
    """A pending (co-signed) change that no longer builds on the published collection."""


class MalformedPendingError(UntrustedError):
    """A stored pending change that does not parse: unpublished, untrusted input."""


class AttestationError(UntrustedError):
    """An attestation that does not verify or does not describe the image."""


class PolicyRefusal(UntrustedError):
    """A policy BLOCKed the image."""

    #: the BLOCK verdict (a ``trustkit.verdict.Verdict``) when known, for JSON output
    verdict: object | None = None


# --- the world got in the way: exit 3 -----------------------------------------------------
class TrustEnvironmentError(TrustkitError):
    """A store, registry or file system that cannot be reached or written."""

    exit_code = EXIT_ENVIRONMENT


class UnreachableError(TrustEnvironmentError):
    """A registry, trust server or mirror that does not answer."""


class RegistryError(TrustEnvironmentError):
    """A registry answered with an error that is not a trust decision."""


class NotFoundError(RegistryError):
    """The registry has no such repository, manifest or blob."""


class AuthenticationError(RegistryError):
    """Credentials missing or refused by a registry."""

    exit_code = EXIT_ENVIRONMENT


class StorageError(TrustEnvironmentError):
    """Local storage (trust dir, OCI layout, key store) could not be read or written."""


class LockTimeoutError(StorageError):
    """Another writer holds the collection lock for too long."""


class MetadataNotFoundError(StorageError):
    """The trust store has no such metadata file (or no such collection)."""


class PendingNotFoundError(MetadataNotFoundError):
    """The trust store has no pending (co-signed) change with that id."""


class ConflictError(TrustEnvironmentError):
    """Another writer published the collection after this writer loaded it (optimistic
    publishing): nothing was published; reload, re-apply the change and publish again."""


def internal_error_line(exc: BaseException) -> str:
    """The one line every entry point prints for a bug (an exception that is not ours)."""
    message = " ".join(str(exc).split()) or "(no message)"
    return (
        f"internal error: {type(exc).__name__}: {message} — please report this at {REPORT_BUGS_AT}"
    )
