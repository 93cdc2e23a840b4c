"""Image policies: files, loading, and the pure evaluator.

``load_policies(settings, extra_files=...)`` reads and validates policy files;
``evaluate(policies, facts, context=..., now=...)`` decides about one image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustkit._lazy import lazy_exports

# Imported on first use (PEP 562): a check with no policy files loads neither the rules nor
# yaml (``trustkit.policy.files`` lists the files without them).
if TYPE_CHECKING:
    from trustkit.policy.evaluation import Evaluation, ImageFacts, evaluate
    from trustkit.policy.globs import ImageGlob
    from trustkit.policy.loader import (
        PolicyProblem,
        PolicyValidationError,
        check_policy_file,
        check_policy_name,
        check_policy_text,
        find_policy,
        load_policies,
        load_policy_file,
        load_policy_text,
        policy_document,
        policy_files_in,
        policy_schema,
    )
    from trustkit.policy.model import (
        API_VERSION,
        KIND,
        AllowlistEntry,
        Policy,
        SignedRequirement,
        TrustedScanner,
        parse_duration,
    )
    from trustkit.policy.rules import RULES, Evidence
    from trustkit.policy.scope import ScopeSubject

_MODULE_OF: dict[str, str] = {
    "Evaluation": "trustkit.policy.evaluation",
    "ImageFacts": "trustkit.policy.evaluation",
    "evaluate": "trustkit.policy.evaluation",
    "ImageGlob": "trustkit.policy.globs",
    "PolicyProblem": "trustkit.policy.loader",
    "PolicyValidationError": "trustkit.policy.loader",
    "check_policy_file": "trustkit.policy.loader",
    "check_policy_name": "trustkit.policy.loader",
    "check_policy_text": "trustkit.policy.loader",
    "find_policy": "trustkit.policy.loader",
    "load_policies": "trustkit.policy.loader",
    "load_policy_file": "trustkit.policy.loader",
    "load_policy_text": "trustkit.policy.loader",
    "policy_document": "trustkit.policy.loader",
    "policy_files_in": "trustkit.policy.loader",
    "policy_schema": "trustkit.policy.loader",
    "API_VERSION": "trustkit.policy.model",
    "KIND": "trustkit.policy.model",
    "AllowlistEntry": "trustkit.policy.model",
    "Policy": "trustkit.policy.model",
    "SignedRequirement": "trustkit.policy.model",
    "TrustedScanner": "trustkit.policy.model",
    "parse_duration": "trustkit.policy.model",
    "RULES": "trustkit.policy.rules",
    "Evidence": "trustkit.policy.rules",
    "ScopeSubject": "trustkit.policy.scope",
}


__getattr__ = lazy_exports(__name__, _MODULE_OF)


__all__ = [
    "API_VERSION",
    "KIND",
    "RULES",
    "AllowlistEntry",
    "Evaluation",
    "Evidence",
    "ImageFacts",
    "ImageGlob",
    "Policy",
    "PolicyProblem",
    "PolicyValidationError",
    "ScopeSubject",
    "SignedRequirement",
    "TrustedScanner",
    "check_policy_file",
    "check_policy_name",
    "check_policy_text",
    "evaluate",
    "find_policy",
    "load_policies",
    "load_policy_file",
    "load_policy_text",
    "parse_duration",
    "policy_document",
    "policy_files_in",
    "policy_schema",
]
