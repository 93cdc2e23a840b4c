"""Short names ("alpine", "team/app:v1") resolved by the registries configuration.

Docker always means docker.io; the registries file of the seed guide may list other
``unqualified_search_registries`` and a ``short_name_mode`` (the containers-registries.conf
semantics):

- ``disabled``: Docker's rule, docker.io, whatever the list says;
- ``enforcing`` (default): a short name must resolve to exactly one registry; with several
  candidates it is refused as ambiguous, so "alpine" can never silently come from a registry the
  user did not mean (a classic squatting attack);
- ``permissive``: the first registry of the list.

With the default configuration (search list ``[docker.io]``) every mode is Docker's rule. Entry
points resolve user-typed references here; the library below them only sees qualified names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import BadInputError

# the registries configuration's module is imported only for a short name: a qualified reference
# (every `trust verify` of a registry image) needs none of it
if TYPE_CHECKING:
    from trustkit.registry.config import RegistriesConfig
    from trustkit.registry.pool import RegistryPool


def is_short_name(text: str) -> bool:
    """True when ``text`` names no registry: its first path component is not a domain by
    Docker's rule (a dot, a port or ``localhost``), as in ``alpine`` or ``team/app:v1``."""
    if text.startswith("oci:"):
        return False  # a local OCI layout, not a registry reference
    first, sep, _ = text.partition("/")
    if not sep:
        return True
    return "." not in first and ":" not in first and first != "localhost" and first.islower()


def qualify(text: str, config: RegistriesConfig) -> str:
    """``text`` with a registry in front when it is a short name that ``config`` resolves
    elsewhere than docker.io; otherwise ``text`` unchanged (Docker's rule applies when parsed).
    Tags and digests are kept as written, so repositories stay repositories."""
    if not is_short_name(text):
        return text
    from trustkit.registry.config import DOCKER_HUB

    search = config.unqualified_search_registries
    if config.short_name_mode == "disabled" or not search or search == (DOCKER_HUB,):
        return text
    if config.short_name_mode == "enforcing" and len(search) > 1:
        candidates = ", ".join(
            refs.parse(_prefixed(text, registry), default_tag=False).repository
            for registry in search
        )
        raise BadInputError(
            f"short name {text!r} is ambiguous: it could be {candidates}",
            hint="use a fully qualified reference, or list a single unqualified search registry",
        )
    return _prefixed(text, search[0])


def qualify_for(registries: RegistryPool | Settings, text: str) -> str:
    """``qualify`` with the process's registries configuration (read only for short names).

    ``registries`` is the process's pool (config parsed once); bare ``Settings`` reads the file.
    """
    if not is_short_name(text):
        return text
    from trustkit.registry.config import load_registries_config

    if isinstance(registries, Settings):
        return qualify(text, load_registries_config(registries))
    return qualify(text, registries.config)


def _prefixed(text: str, registry: str) -> str:
    from trustkit.registry.config import DOCKER_HUB

    return text if registry == DOCKER_HUB else f"{registry}/{text}"
