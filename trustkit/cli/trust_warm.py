"""``trustkit trust verify IMAGE:TAG`` answered from the client cache before click loads.

A warm verify (ADR 0017) does a few milliseconds of work; loading the CLI framework and the
command modules costs several times that. So ``trustkit.cli.main`` asks here first, for the one
invocation the warm path can answer on its own: exactly ``trust verify IMAGE:TAG`` with a fully
qualified reference and no option. When the client cache holds a verified answer that a full
refresh would confirm (``collections.warm.remembered``: the same checks as the command's warm
path), this prints what the command prints. In every other case (an option, a short name, a
digest, nothing remembered, anything changed, a warning to show, any error) it answers nothing
and the command runs through click as usual, which does its own checks again.
"""

from __future__ import annotations


def warm_verify_output(args: list[str]) -> str | None:
    """What ``trustkit ARGS`` prints on stdout (exit 0) when it is a warm ``trust verify``,
    else None."""
    if len(args) != 3 or args[:2] != ["trust", "verify"]:
        return None
    text = args[2]
    from trustkit.registry.shortnames import is_short_name

    if text.startswith("-") or is_short_name(text):  # an option, or a name to qualify first
        return None
    import warnings

    from trustkit.collections.warm import remembered
    from trustkit.config import Settings
    from trustkit.refs import parse
    from trustkit.services import Services

    try:
        ref = parse(text)
        if ref.digest is not None:
            return None
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            # a warning (trust data about to expire) is the command's to print, in its format
            target = remembered(Services(Settings.from_env()), ref)
    except Exception:  # whatever it is, the command itself reports it properly
        return None
    if target is None or shown:
        return None
    return target.digest + "\n"
