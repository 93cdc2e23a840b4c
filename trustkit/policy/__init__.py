"""Image policies: files, loading, and the pure evaluator.

``load_policies(settings, extra_files=...)`` reads and validates policy files;
``evaluate(policies, facts, context=..., now=...)`` decides about one image.
"""

from __future__ import annotations

from trustkit.policy.evaluate import Evaluation, ImageFacts, evaluate
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
