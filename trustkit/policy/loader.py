"""Policy files: read, check against the published JSON Schema, then check meaning.

Every problem is reported as ``file:line:column: message``. A file that does not validate raises
``PolicyValidationError`` (a ``PolicyFileError``, exit 2): a broken policy never means "allow".
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from trustkit._fs import read_protected
from trustkit.config import Settings
from trustkit.errors import BadInputError, PolicyFileError, PolicyValidationError
from trustkit.model.findings import Severity
from trustkit.policy.files import MAX_POLICY_FILES as MAX_POLICY_FILES
from trustkit.policy.files import POLICY_SUFFIXES as POLICY_SUFFIXES
from trustkit.policy.files import policy_files_in as policy_files_in
from trustkit.policy.globs import ImageGlob
from trustkit.policy.model import API_VERSION, Policy
from trustkit.policy.rules import RULES, ParseContext
from trustkit.policy.rules.allowlist import compile_globs
from trustkit.policy.rules.base import Problem, where
from trustkit.policy.yamlnodes import LocatedDocument, Path_, YamlShapeError, load_located
from trustkit.verdict import Action, Context

MAX_POLICY_FILE = 1024 * 1024
_POLICY_NAME_RE = re.compile(r"\A[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?\Z")
_MAX_MESSAGE = 300


#: one problem of a policy file, with its position
PolicyProblem = Problem
__all__ = ["PolicyProblem", "PolicyValidationError"]


@functools.cache
def policy_schema() -> dict[str, Any]:
    """The published schema (docs/policy.schema.json is a copy of this package resource)."""
    text = resources.files("trustkit.policy").joinpath("policy.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def _validator() -> Any:
    import jsonschema  # only when a policy file is read: keeps the no-policy paths light

    return jsonschema.Draft202012Validator(policy_schema())


_PATTERN_HINTS = {
    "duration": "use a number and a unit s, m, h, d or w, e.g. 7d or 24h",
    "date": "use a date YYYY-MM-DD or an RFC 3339 date-time with a time zone",
    "vulnerabilityId": "expected a vulnerability id such as CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx",
    "imageGlob": "expected an image reference glob such as registry.example.com/team/* or alpine",
}


_where = where


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _schema_problems(doc: LocatedDocument, error: Any) -> list[PolicyProblem]:
    path: Path_ = tuple(error.absolute_path)
    where = _where(path)
    kind = error.validator
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}

    def at(p: Path_, message: str, *, key: bool = False) -> PolicyProblem:
        pos = doc.position(p, key=key)
        return PolicyProblem(pos.line, pos.column, message[:_MAX_MESSAGE])

    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        return [
            at(
                (*path, k),
                f"unknown key {k!r} in {where} (expected one of: {', '.join(allowed)})",
                key=True,
            )
            for k in instance
            if k not in allowed
        ]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return [at(path, f"missing required key {k!r} in {where}") for k in missing]
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        return [at(path, f"{where}: {_short(instance)} is not one of {choices}")]
    if kind == "const":
        return [at(path, f"{where} must be {error.validator_value!r}, not {_short(instance)}")]
    if kind == "type":
        return [at(path, f"{where}: expected {error.validator_value}, got {_type_name(instance)}")]
    if kind == "pattern":
        hint = next(
            (
                h
                for name, h in _PATTERN_HINTS.items()
                if policy_schema()["$defs"][name].get("pattern") == error.validator_value
            ),
            "it does not have the expected form",
        )
        if path and path[-1] == "name":
            hint = "use lowercase letters, digits, '.', '_' and '-' (at most 64 characters)"
        return [at(path, f"{where}: {_short(instance)}: {hint}")]
    if kind == "oneOf" and path and path[-1] == "require_signed":
        if isinstance(instance, dict):
            inner = [e for e in error.context if list(e.relative_schema_path)[:1] == [1]]
            if inner:
                return [p for e in inner for p in _schema_problems(doc, e)]
        return [at(path, f"{where}: expected true, false or a mapping (signers, threshold, keys)")]
    if kind == "uniqueItems":
        return [at(path, f"{where}: contains duplicate entries")]
    return [at(path, f"{where}: {error.message}")]


class _Semantics:
    """Turns a schema-valid document into a Policy, collecting every problem on the way.
    Each rule parses its own value (``trustkit.policy.rules``); this only does the envelope."""

    def __init__(self, doc: LocatedDocument, source: Path | None) -> None:
        self.doc = doc
        self.source = source
        self.problems: list[Problem] = []

    def globs(self, values: Iterable[str], path: Path_) -> tuple[ImageGlob, ...]:
        at = ParseContext(self.doc, self.source, self.problems, {}, path)
        return compile_globs(list(values), at)

    def policy(self) -> Policy:
        data: dict[str, Any] = self.doc.data
        rules_doc: dict[str, Any] = data.get("rules", {})
        action = Action[data["action"]]
        scope = self.globs(data.get("scope", ["**"]), ("scope",))
        exclude = self.globs(data.get("exclude", ()), ("exclude",))
        parsed: dict[str, Any] = {}
        at = ParseContext(self.doc, self.source, self.problems, parsed)
        for rule in RULES:  # registry order: a rule may look at those parsed before it
            here = at.at(rule.key)
            if rule.key in rules_doc:
                config = rule.parse(rules_doc[rule.key], here)
            else:
                config = rule.default(here)
            if config is not None:
                parsed[rule.key] = config
        contexts = data.get("contexts")
        return Policy(
            name=data["name"],
            action=action,
            scope=scope,
            exclude=exclude,
            description=data.get("description"),
            contexts=frozenset(Context(c) for c in contexts) if contexts else None,
            rules=dict(parsed),
            source=self.source,
            document=data,
        )


def check_policy_text(
    text: str, *, source: Path | None = None
) -> tuple[Policy | None, list[PolicyProblem]]:
    """Every problem of a policy document (empty list and a Policy when it is valid)."""
    try:
        doc = load_located(text)
    except YamlShapeError as exc:
        return None, [PolicyProblem(exc.position.line, exc.position.column, str(exc))]
    if not isinstance(doc.data, dict):
        return None, [PolicyProblem(1, 1, "a policy file must be a YAML mapping (key: value)")]
    problems: list[PolicyProblem] = []
    for error in _validator().iter_errors(doc.data):
        problems.extend(_schema_problems(doc, error))
    if problems:
        return None, sorted(problems, key=lambda p: (p.line, p.column))
    semantics = _Semantics(doc, source)
    policy = semantics.policy()
    if semantics.problems:
        return None, sorted(semantics.problems, key=lambda p: (p.line, p.column))
    return policy, []


def load_policy_text(text: str, *, source: Path | None = None) -> Policy:
    policy, problems = check_policy_text(text, source=source)
    if policy is None:
        raise PolicyValidationError(str(source) if source else "<policy>", problems)
    return policy


def _read_text(path: Path) -> str:
    # read_protected: a regular file nobody else could have written (trustkit._fs)
    try:
        data = read_protected(path, MAX_POLICY_FILE, what="policy file", error=PolicyFileError)
    except FileNotFoundError:
        if path.is_symlink():  # never skipped: a half-updated ConfigMap volume looks like this
            raise PolicyFileError(
                f"policy file {path} is a dangling symlink (to {os.readlink(path)})"
            ) from None
        raise PolicyFileError(f"policy file {path} not found") from None
    except BadInputError as exc:
        raise PolicyFileError(str(exc), hint=exc.hint) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def check_policy_file(path: Path) -> tuple[Policy | None, list[PolicyProblem]]:
    return check_policy_text(_read_text(path), source=path)


def load_policy_file(path: Path) -> Policy:
    return load_policy_text(_read_text(path), source=path)


def check_policy_name(name: str) -> str:
    """``name`` if it can name a policy (and so its ``NAME.yaml`` file), else BadInputError."""
    if not _POLICY_NAME_RE.match(name):
        raise BadInputError(
            f"invalid policy name {name!r}: use lowercase letters, digits, '.', '_' and '-' "
            "(at most 64 characters, starting and ending with a letter or digit)"
        )
    return name


def find_policy(directory: Path, name: str) -> tuple[Path, Policy | None] | None:
    """The file that defines policy ``name``: ``NAME.yaml`` first, else any file naming it."""
    files = policy_files_in(directory)
    for path in files:
        if path.stem == name:
            return path, check_policy_file(path)[0]
    for path in files:
        policy, _ = check_policy_file(path)
        if policy is not None and policy.name == name:
            return path, policy
    return None


def load_policies(settings: Settings, *, extra_files: Sequence[Path] = ()) -> list[Policy]:
    """Policies from ``settings.effective_policy_dir`` then ``extra_files`` (``--policy``).

    Any invalid file raises; two policies with the same name raise (which would win is unclear).
    """
    directory = settings.effective_policy_dir
    required = settings.policy_dir is not None  # configured and missing is an error, not "allow"
    paths: list[Path] = [*policy_files_in(directory, required=required), *extra_files]
    policies: list[Policy] = []
    by_name: dict[str, Path] = {}
    seen: set[Path] = set()
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        policy = load_policy_file(path)
        if policy.name in by_name:
            raise PolicyFileError(
                f"policy name {policy.name!r} is defined twice: in {by_name[policy.name]} "
                f"and in {path}",
                hint="policy names must be unique",
            )
        by_name[policy.name] = path
        policies.append(policy)
    return policies


def policy_document(
    name: str,
    *,
    action: Action,
    severity: Severity | None = None,
    scope: Sequence[str] = (),
    exclude: Sequence[str] = (),
    ignore_unfixed: bool = False,
    max_scan_age: str | None = None,
    require_signed: bool = False,
    require_scan: bool | None = None,
    deny: Sequence[str] = (),
    description: str | None = None,
    trusted_scanners: Sequence[str] = (),
) -> dict[str, Any]:
    """A policy document as ``policy create`` writes it (validate it with load_policy_text)."""
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ImagePolicy", "name": name}
    if description:
        doc["description"] = description
    doc["action"] = action.name
    doc["scope"] = list(scope) or ["**"]
    if exclude:
        doc["exclude"] = list(exclude)
    rules: dict[str, Any] = {}
    if severity is not None:
        rules["severity"] = severity.name
    if ignore_unfixed:
        rules["ignore_unfixed"] = True
    if deny:
        rules["denylist"] = [d.upper() for d in deny]
    if max_scan_age:
        rules["max_scan_age"] = max_scan_age
    if require_scan is not None:
        rules["require_scan"] = require_scan
    if require_signed:
        rules["require_signed"] = True
    if trusted_scanners:
        rules["trusted_scanners"] = list(trusted_scanners)
    doc["rules"] = rules
    return doc
