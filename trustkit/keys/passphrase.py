"""Where passphrases come from: the environment first, then a prompt on a terminal, else an error.

Like Docker content trust, the root key has its own variable and every other role shares the
repository one. Without a terminal there is nobody to ask, so we fail with the variable to set.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

from trustkit.config import ENV_REPOSITORY_PASSPHRASE, ENV_ROOT_PASSPHRASE, Settings
from trustkit.errors import PassphraseError

MIN_NEW_PASSPHRASE = 8  # as notary: a shorter passphrase is refused when creating a key


def env_var_for(role: str) -> str:
    return ENV_ROOT_PASSPHRASE if role == "root" else ENV_REPOSITORY_PASSPHRASE


class PassphraseSource:
    """Hands out passphrases per role; prompted answers are remembered for this process only."""

    def __init__(
        self,
        settings: Settings,
        *,
        interactive: bool | None = None,
        prompt: Callable[[str], str] = getpass.getpass,
    ) -> None:
        self._settings = settings
        self._interactive = sys.stdin.isatty() if interactive is None else interactive
        self._prompt = prompt
        self._remembered: dict[str, str] = {}

    def _from_settings(self, role: str) -> str | None:
        value = (
            self._settings.root_passphrase
            if role == "root"
            else self._settings.repository_passphrase
        )
        return value or None  # an empty variable counts as unset

    def configured(self, role: str) -> str | None:
        """The passphrase for a key of ``role`` when the environment sets it (never prompts)."""
        return self._from_settings(role)

    def get(self, role: str, *, purpose: str, confirm: bool = False) -> str:
        """The passphrase for a key of ``role``; ``purpose`` is shown in the prompt."""
        configured = self._from_settings(role)
        if configured is not None:
            return configured
        slot = env_var_for(role)
        if slot in self._remembered:
            return self._remembered[slot]
        if not self._interactive:
            raise PassphraseError(
                f"a passphrase is needed to {purpose} and there is no terminal to ask: set {slot}"
            )
        value = self._ask(role, purpose=purpose, confirm=confirm)
        self._remembered[slot] = value
        return value

    def forget(self, role: str) -> None:
        """Drop a remembered answer (after it turned out to be wrong)."""
        self._remembered.pop(env_var_for(role), None)

    def ask_once(self, label: str) -> str:
        """A one-off passphrase (for example of a file being imported); never remembered."""
        if not self._interactive:
            raise PassphraseError(
                f"a passphrase is needed for {label} and there is no terminal to ask"
            )
        return self._prompt(f"Enter passphrase for {label}: ")

    def _ask(self, role: str, *, purpose: str, confirm: bool) -> str:
        value = self._prompt(f"Enter passphrase to {purpose} ({role} key): ")
        if not confirm:
            if not value:
                raise PassphraseError("empty passphrase")
            return value
        if len(value) < MIN_NEW_PASSPHRASE:
            raise PassphraseError(
                f"passphrase is too short: use at least {MIN_NEW_PASSPHRASE} characters"
            )
        if self._prompt("Repeat passphrase: ") != value:
            raise PassphraseError("the passphrases do not match")
        return value
