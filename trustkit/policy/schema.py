"""The policy schema assembled from the rules' fragments.

``policy.schema.json`` (and its copy ``docs/policy.schema.json``) is what editors, linters and
the loader read; a test checks it equals ``assembled_schema()``, so a rule's schema lives in its
module and the published file cannot drift from it. Regenerate the file with
``python -m trustkit.policy.schema > trustkit/policy/policy.schema.json``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from trustkit.policy.rules import RULES

#: the ``$defs`` the envelope itself uses (scope and exclude globs)
_BASE_DEFS: dict[str, Any] = {
    "imageGlob": {
        "type": "string",
        "minLength": 1,
        "maxLength": 512,
        "pattern": "^[A-Za-z0-9._/:@*?-]+$",
    }
}


def assembled_schema(published: dict[str, Any]) -> dict[str, Any]:
    """``published`` with its rule properties and ``$defs`` replaced by the fragments."""
    schema = copy.deepcopy(published)
    rules = schema["properties"]["rules"]
    rules["properties"] = {r.key: dict(r.schema_fragment()) for r in RULES}
    defs: dict[str, Any] = dict(_BASE_DEFS)
    for rule in RULES:
        for name, fragment in rule.schema_defs().items():
            if name in defs and defs[name] != fragment:
                raise AssertionError(f"two rules define $defs/{name} differently")
            defs[name] = dict(fragment)
    schema["$defs"] = defs
    return schema


def main() -> None:
    from trustkit.policy.loader import policy_schema

    print(json.dumps(assembled_schema(policy_schema()), indent=2))


if __name__ == "__main__":
    main()
