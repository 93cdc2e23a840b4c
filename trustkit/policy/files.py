"""Which policy files a directory holds: listed without loading the rules or yaml, so a
check with no policies stays cheap (``trustkit.pipeline.check``)."""

from __future__ import annotations

from pathlib import Path

from trustkit._fs import check_protected_dir
from trustkit.config import Settings
from trustkit.errors import PolicyFileError

MAX_POLICY_FILES = 1000
POLICY_SUFFIXES = (".yaml", ".yml")


def policy_files_in(directory: Path, *, required: bool = False) -> list[Path]:
    """The policy files of a directory, sorted; hidden files (``.name``) are skipped.

    Every other ``*.yaml``/``*.yml`` entry, in any letter case, is listed even when it is a
    dangling symlink or no file at all, so that loading it refuses loudly rather than skipping
    it. A missing directory is no policies, unless ``required`` (it was configured explicitly).
    """
    if not directory.exists():
        if required:
            raise PolicyFileError(
                f"policy directory {directory} does not exist",
                hint="SERVIN_POLICY_DIR names it: create it, or unset SERVIN_POLICY_DIR",
            )
        return []
    if not directory.is_dir():
        raise PolicyFileError(f"policy directory {directory} is not a directory")
    check_protected_dir(directory, what="policy directory", error=PolicyFileError)
    try:
        files = sorted(
            p
            for p in directory.iterdir()
            if p.suffix.lower() in POLICY_SUFFIXES and not p.name.startswith(".")
        )
    except OSError as exc:
        raise PolicyFileError(f"cannot list policy directory {directory}: {exc}") from None
    if len(files) > MAX_POLICY_FILES:
        raise PolicyFileError(f"{directory} holds more than {MAX_POLICY_FILES} policy files")
    return files


def configured_policy_files(settings: Settings) -> list[Path]:
    """The policy files of ``settings``' policy directory (a configured one must exist)."""
    return policy_files_in(settings.effective_policy_dir, required=settings.policy_dir is not None)
