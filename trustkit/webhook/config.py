"""The webhook's configuration file (YAML): what to exempt, how strict to be, how long to wait.

Fail closed unless told otherwise: ``fail_open`` must be set explicitly for an internal error or an
unreachable registry to let a pod through.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from trustkit import refs
from trustkit.errors import BadInputError, InvalidReferenceError
from trustkit.policy.globs import ImageGlob

MAX_CONFIG_BYTES = 256 * 1024
DEFAULT_DEADLINE_SECONDS = 8.0  # below the API server's 10 s webhook timeout
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

Mode = Literal["enforce", "warn"]


@dataclass(frozen=True)
class WebhookConfig:
    mode: Mode = "enforce"
    fail_open: bool = False
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_images: int = 256
    exempt_namespaces: tuple[str, ...] = ()
    exempt_images: tuple[str, ...] = ()  # image globs, the policy scope dialect (policy.globs)
    policy_files: tuple[Path, ...] = ()
    cache_ttl_seconds: float = 300.0
    refusal_ttl_seconds: float = 10.0  # refusals expire sooner so a fix is seen quickly
    cache_max_entries: int = 4096
    workers: int = 16  # threads running verifications
    #: verifications running at once against one registry host; the rest wait without a thread,
    #: so one hanging or dripping registry cannot take every worker
    registry_concurrency: int = 4
    #: a request's headers must arrive within this long of its connection opening (or of the
    #: previous answer on a kept-alive connection); its body within the review's deadline
    request_start_seconds: float = 5.0
    #: open connections at most; past it new ones are closed at once (descriptors stay for probes)
    max_connections: int = 512
    #: digest of everything above: part of every cache key, so a new config never reuses verdicts
    generation: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("enforce", "warn"):
            raise BadInputError(
                f"webhook config: mode must be 'enforce' or 'warn', not {self.mode!r}"
            )
        _positive("deadline_seconds", self.deadline_seconds, maximum=30.0)
        _positive("max_body_bytes", self.max_body_bytes, maximum=64 * 1024 * 1024)
        _positive("max_images", self.max_images, maximum=10_000)
        _positive("cache_ttl_seconds", self.cache_ttl_seconds, allow_zero=True)
        _positive("refusal_ttl_seconds", self.refusal_ttl_seconds, allow_zero=True)
        _positive("cache_max_entries", self.cache_max_entries, maximum=1_000_000)
        _positive("workers", self.workers, maximum=512)
        _positive("registry_concurrency", self.registry_concurrency, maximum=512)
        _positive("request_start_seconds", self.request_start_seconds, maximum=60.0)
        _positive("max_connections", self.max_connections, maximum=100_000)
        exempt: list[ImageGlob] = []
        for text in self.exempt_images:
            try:
                exempt.append(ImageGlob.compile(text))
            except InvalidReferenceError as exc:
                raise BadInputError(f"webhook config: exempt_images: {exc}") from None
        object.__setattr__(self, "_exempt_globs", tuple(exempt))
        if not self.generation:
            body = {k: v for k, v in asdict(self).items() if k != "generation"}
            text = json.dumps(body, sort_keys=True, default=str)
            object.__setattr__(self, "generation", hashlib.sha256(text.encode()).hexdigest()[:16])

    def namespace_exempt(self, namespace: str | None) -> bool:
        return namespace is not None and namespace in self.exempt_namespaces

    def image_exempt(self, *references: str) -> bool:
        """One matcher for every image glob (``trustkit.policy.globs``): ``*`` stays inside one
        path component, domains are compared as Docker spells them, and a tag glob never
        exempts a reference whose tag is unknown (a digest)."""
        globs: tuple[ImageGlob, ...] = getattr(self, "_exempt_globs", ())
        if not globs:
            return False  # nothing to match: no reference needs parsing (the usual case)
        for text in references:
            try:
                ref = refs.parse(text)
            except InvalidReferenceError:
                continue  # never exempt what cannot be parsed
            if any(g.matches(ref) for g in globs):
                return True
        return False

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, base_dir: Path | None = None
    ) -> WebhookConfig:
        known = {
            "mode", "fail_open", "deadline_seconds", "max_body_bytes", "max_images",
            "exempt_namespaces", "exempt_images", "policy_files", "cache_ttl_seconds",
            "refusal_ttl_seconds", "cache_max_entries", "workers", "registry_concurrency",
            "request_start_seconds", "max_connections",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInputError(f"webhook config: unknown setting(s) {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key in ("mode",):
            if key in data:
                values[key] = _typed(key, data[key], str)
        if "fail_open" in data:
            values["fail_open"] = _typed("fail_open", data["fail_open"], bool)
        for key in (
            "deadline_seconds", "cache_ttl_seconds", "refusal_ttl_seconds", "request_start_seconds",
        ):  # fmt: skip
            if key in data:
                raw = data[key]
                if isinstance(raw, bool) or not isinstance(raw, int | float):
                    raise BadInputError(f"webhook config: {key} must be a number")
                values[key] = float(raw)
        for key in (
            "max_body_bytes", "max_images", "cache_max_entries", "workers",
            "registry_concurrency", "max_connections",
        ):  # fmt: skip
            if key in data:
                values[key] = _typed(key, data[key], int)
        for key in ("exempt_namespaces", "exempt_images"):
            if key in data:
                values[key] = _strings(key, data[key])
        if "policy_files" in data:
            base = base_dir or Path.cwd()
            values["policy_files"] = tuple(
                (base / p) if not Path(p).is_absolute() else Path(p)
                for p in _strings("policy_files", data["policy_files"])
            )
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> WebhookConfig:
        import yaml

        from trustkit._fs import read_protected

        try:  # exempt_images and fail_open decide admission: nobody else may write the file
            raw = read_protected(path, MAX_CONFIG_BYTES, what="webhook config")
        except FileNotFoundError as exc:
            raise BadInputError(f"webhook config {path} does not exist") from exc
        try:
            data = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise BadInputError(f"webhook config {path} is not valid YAML: {exc}") from exc
        except RecursionError:
            raise BadInputError(f"webhook config {path} is nested too deeply") from None
        if not isinstance(data, dict):
            raise BadInputError(f"webhook config {path} must be a mapping")
        config = cls.from_mapping(data, base_dir=path.parent)
        # policy contents are part of the generation: editing a policy invalidates cached verdicts
        digest = hashlib.sha256(config.generation.encode())
        for policy in config.policy_files:
            try:
                digest.update(read_protected(policy, 4 * 1024 * 1024, what="policy file"))
            except FileNotFoundError as exc:
                raise BadInputError(f"policy file {policy} does not exist") from exc
        object.__setattr__(config, "generation", digest.hexdigest()[:16])
        return config


def _positive(
    name: str, value: float, *, maximum: float | None = None, allow_zero: bool = False
) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise BadInputError(f"webhook config: {name} must be positive")
    if maximum is not None and value > maximum:
        raise BadInputError(f"webhook config: {name} must be at most {maximum:g}")


def _typed(name: str, value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadInputError(f"webhook config: {name} must be a {kind.__name__}")
    return value


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadInputError(f"webhook config: {name} must be a list of non-empty strings")
    return tuple(value)
