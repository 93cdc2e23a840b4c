"""securesystemslib's online signer back-ends (AWS, HSM, GCP, Azure, Vault...), loaded on use.

``securesystemslib.signer`` (imported by ``tuf.api.metadata``) imports every back-end's SDK when
it is installed: boto3 and botocore alone cost 0.3–1 s, python-pkcs11 another 30–100 ms, on every
command, though only online keys need them. While those back-end modules are first imported, this
finder makes their SDK imports fail; each back-end then records itself as unavailable, exactly as
when the SDK is not installed. ``enable()`` (called by ``trustkit.keys.online`` before it uses an
online key) re-imports the back-ends with their SDKs and re-registers them.

The same finder keeps httpx from importing its command-line tool's dependencies (rich and
pygments, ~100 ms) at ``import httpx``: trustkit never runs httpx's CLI, and httpx then exposes a
``main`` that says the CLI extras are missing. Anything else importing rich still gets it.

And ``tuf.ngclient`` imports its default HTTP fetcher (urllib3, http.client, email, ssl: ~100 ms)
though trustkit always hands the Updater its own fetcher: python-tuf's modules get a stand-in
``Urllib3Fetcher`` that imports the real one the first time a fetcher is built.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.abc import Loader as _LoaderBase
    from importlib.abc import MetaPathFinder as _FinderBase
else:  # importlib.abc costs ~12 ms at start-up (importlib.resources, tempfile...): duck-typed
    _LoaderBase = _FinderBase = object

_BACKEND_PREFIX = "securesystemslib.signer._"
#: top-level packages of the back-ends' SDKs
_SDK_ROOTS = frozenset({"boto3", "botocore", "pkcs11", "google", "azure", "hvac", "keylet"})
#: importer module -> top-level packages it does not get (httpx's CLI is never used)
_NEVER_FOR = {"httpx._main": frozenset({"rich", "pygments"})}
_FETCHER_MODULE = "tuf.ngclient.urllib3_fetcher"
_lock = threading.Lock()
_real_fetcher_wanted = False
_enabled = False
_deferred: set[str] = set()  # back-end modules that were imported without their SDK


def _importing_module() -> str | None:
    """The module whose ``import`` statement is running (past importlib's own frames)."""
    frame = sys._getframe(2)
    for _ in range(30):
        if frame is None:
            return None
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and not name.startswith(("importlib", "_frozen_importlib")):
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return None


class _DeferSdks(_FinderBase):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == _FETCHER_MODULE and not _real_fetcher_wanted:
            importer = _importing_module()
            if importer is not None and importer.startswith("tuf.ngclient"):
                return importlib.machinery.ModuleSpec(fullname, _StandInFetcherLoader())
            return None
        root = fullname.partition(".")[0]
        if root in ("rich", "pygments"):
            importer = _importing_module()
            if importer is not None and root in _NEVER_FOR.get(importer, ()):
                raise ModuleNotFoundError(f"{fullname} is not needed by {importer}", name=fullname)
            return None
        if _enabled or root not in _SDK_ROOTS:
            return None
        importer = _importing_module()
        if importer is None or not importer.startswith(_BACKEND_PREFIX):
            return None
        _deferred.add(importer)
        raise ModuleNotFoundError(f"{fullname} is loaded on first use", name=fullname)


class _StandInFetcherLoader(_LoaderBase):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        class Urllib3Fetcher:
            """Stand-in: builds the real ``Urllib3Fetcher``, importing it (and urllib3) now."""

            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                return _real_fetcher_class()(*args, **kwargs)

        module.Urllib3Fetcher = Urllib3Fetcher  # type: ignore[attr-defined]


def _real_fetcher_class() -> type:
    global _real_fetcher_wanted
    with _lock:
        _real_fetcher_wanted = True
        stand_in = sys.modules.get(_FETCHER_MODULE)
        if stand_in is not None and isinstance(
            getattr(stand_in, "__loader__", None), _StandInFetcherLoader
        ):
            del sys.modules[_FETCHER_MODULE]
        real: type = importlib.import_module(_FETCHER_MODULE).Urllib3Fetcher
        for name in ("tuf.ngclient.updater", "tuf.ngclient"):
            user = sys.modules.get(name)
            if user is not None:
                user.Urllib3Fetcher = real  # type: ignore[attr-defined]
        return real


def install() -> None:
    if not any(isinstance(finder, _DeferSdks) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferSdks())


def enable() -> None:
    """Re-import the back-ends that were loaded without their SDK, now with it."""
    global _enabled
    with _lock:
        if _enabled:
            return
        _enabled = True
        if not _deferred:
            return
        sslib = importlib.import_module("securesystemslib.signer")
        registries = [
            getattr(sslib, "SIGNER_FOR_URI_SCHEME", {}),
            getattr(sslib, "KEY_FOR_TYPE_AND_SCHEME", {}),
        ]
        for name in sorted(_deferred):
            module = sys.modules.get(name)
            if module is None:
                continue
            fresh = importlib.reload(module)
            for attr, value in vars(fresh).items():
                if not isinstance(value, type) or value.__module__ != name:
                    continue
                if getattr(sslib, attr, None) is not None:
                    setattr(sslib, attr, value)
                for registry in registries:
                    for slot, registered in list(registry.items()):
                        if getattr(registered, "__module__", None) == name and (
                            registered.__name__ == attr
                        ):
                            registry[slot] = value
        _deferred.clear()
