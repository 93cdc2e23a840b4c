"""Package exports imported on first use (PEP 562), so that importing a package for one light
name does not load its heavy modules (python-tuf, httpx, the policy rules, yaml)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, str], aliases: Mapping[str, str] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name in ``homes`` is imported from the
    module named there when first asked for (``aliases`` maps other names onto them), then set
    on the package so later look-ups never come back here."""

    def __getattr__(name: str) -> Any:
        target = (aliases or {}).get(name, name)
        home = homes.get(target)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), target)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
