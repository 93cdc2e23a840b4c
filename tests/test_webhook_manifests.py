"""``trustkit webhook manifests`` deploys: every document validates offline against the
Kubernetes schemas (kubernetes-validate, strict: an unknown field is an error), no trust-directory
Secret, a writable emptyDir client cache, registry credentials from a dockerconfigjson Secret, a
Namespace and a PodDisruptionBudget; the Containerfile runs as a non-root user."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from trustkit.cli import cli
from trustkit.errors import BadInputError
from trustkit.webhook.manifests import manifests

kubernetes_validate = pytest.importorskip("kubernetes_validate")

#: the oldest Kubernetes still supported upstream and the newest schema shipped
K8S_VERSIONS = ("1.33.0", "1.37.0")
REPO_ROOT = Path(__file__).resolve().parents[1]


def documents(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["webhook", "manifests", *args])
    assert result.exit_code == 0, result.output
    return list(yaml.safe_load_all(result.output))


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_validates_against_kubernetes_schemas(version: str) -> None:
    docs = documents("--namespace", "trust-system", "--image", "registry.example/trustkit:0.1.0")
    assert len(docs) >= 7
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_broken_manifest() -> None:
    """The check above can fail: a misspelt field and a wrong type are refused."""
    deployment = by_kind(manifests(), "Deployment")
    deployment["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    budget = by_kind(manifests(), "PodDisruptionBudget")
    budget["spec"]["minAvailable"] = ["one"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(budget, K8S_VERSIONS[-1], strict=True)


def test_trust_data_from_registries_cache_in_an_emptydir() -> None:
    docs = documents("--namespace", "trust-system")
    deployment = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    # no Secret holds trust data: only TLS and registry credentials are Secrets
    secrets = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
    assert secrets == {"trustkit-webhook-tls", "trustkit-registry-credentials"}
    assert env.get("SERVIN_CONTENT_TRUST_SERVER") in (None, "registry")
    # the trust dir (client cache) is a writable emptyDir
    cache = mounts[env["SERVIN_TRUST_DIR"]]
    assert not cache.get("readOnly", False)
    assert "emptyDir" in volumes[cache["name"]]
    # everything the process writes is an emptyDir: the root file system is read-only
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for path, mount in mounts.items():
        if not mount.get("readOnly", False):
            assert "emptyDir" in volumes[mount["name"]], path
    # registry credentials: a dockerconfigjson Secret's key becomes SERVIN_CONFIG/config.json
    credentials = mounts[env["SERVIN_CONFIG"]]
    assert credentials["readOnly"] is True
    secret = volumes[credentials["name"]]["secret"]
    assert secret["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    # non-root, numerically, as the Containerfile's USER
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0


def test_namespace_and_disruption_budget() -> None:
    docs = documents("--namespace", "trust-system")
    assert docs[0]["kind"] == "Namespace"  # applied first: everything else lives in it
    assert docs[0]["metadata"]["name"] == "trust-system"
    budget = by_kind(docs, "PodDisruptionBudget")
    deployment = by_kind(docs, "Deployment")
    assert budget["metadata"]["namespace"] == "trust-system"
    assert budget["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for doc in docs:
        if doc["kind"] not in ("Namespace",) and not doc["kind"].endswith("Configuration"):
            assert doc["metadata"]["namespace"] == "trust-system", doc["kind"]


def test_containerfile_runs_the_webhook_as_non_root() -> None:
    text = (REPO_ROOT / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "no USER in the Containerfile"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric: runAsNonRoot can check it
    deployment = by_kind(manifests(), "Deployment")
    assert int(user) == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert re.search(r'^ENTRYPOINT \["trustkit"\]', text, re.MULTILINE)
    assert "8443" in text


@pytest.mark.parametrize("page", ["operations.md"])
def test_yaml_in_the_docs_validates(page: str) -> None:
    """The renewal CronJob of docs/operations.md is a manifest someone will apply as is."""
    text = (REPO_ROOT / "docs" / page).read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    docs = [d for block in blocks for d in yaml.safe_load_all(block) if d and "kind" in d]
    assert any(d["kind"] == "CronJob" for d in docs)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_cli_network_policy_names_registry_ports_and_api_server_sources() -> None:
    """A registry on :5000 is reachable only when the NetworkPolicy says so: the CLI takes the
    ports (and the API server's CIDRs) instead of leaving operators to edit the YAML."""
    result = CliRunner().invoke(
        cli,
        [
            "webhook",
            "manifests",
            "--registry-port",
            "5000",
            "--registry-port",
            "443",
            "--api-server-cidr",
            "10.0.0.0/8",
        ],
    )
    assert result.exit_code == 0, result.output
    (policy,) = [d for d in yaml.safe_load_all(result.output) if d["kind"] == "NetworkPolicy"]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {5000, 443} <= egress_ports
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    assert {"ipBlock": {"cidr": "10.0.0.0/8"}} in sources
    bad = CliRunner().invoke(cli, ["webhook", "manifests", "--api-server-cidr", "nope"])
    assert isinstance(bad.exception, BadInputError) and bad.exception.exit_code == 2
    assert "not a CIDR" in str(bad.exception)
