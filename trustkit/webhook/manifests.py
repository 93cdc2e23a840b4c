"""Ready-to-apply Kubernetes manifests for the webhook.

Trust data comes from the registries (each image's collection lives next to it): no trust
directory is mounted, the client's cache of verified metadata is a writable ``emptyDir``, and the
registries' credentials come from a ``kubernetes.io/dockerconfigjson`` Secret (optional: public
registries need none). Only the TLS Secret must exist before the Deployment starts
(docs/webhook.md says how to create it).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

NAME = "trustkit-webhook"
PORT = 8443
TLS_SECRET = "trustkit-webhook-tls"
#: a kubernetes.io/dockerconfigjson Secret: read-only credentials for the registries checked
REGISTRY_SECRET = "trustkit-registry-credentials"
REGISTRY_CONFIG_DIR = "/etc/trustkit-registry"  # SERVIN_CONFIG: config.json lives here
TRUST_CACHE = "/var/lib/trustkit/trust"  # SERVIN_TRUST_DIR: the client cache, an emptyDir
POD_ADDRESS = "0.0.0.0"  # noqa: S104 - inside its own pod, reached through the Service
SCRATCH = "/tmp"  # noqa: S108 - an emptyDir of the pod, the root file system is read-only
RUN_AS = 65532  # the Containerfile's USER: no name needed, never root
WORKLOAD_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": [
            "pods",
            "pods/ephemeralcontainers",
            "replicationcontrollers",
            "podtemplates",
        ],
    },
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
    },
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"]},
]


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "trustkit"}


def _deployment(namespace: str, image: str) -> dict[str, Any]:
    probe = {"scheme": "HTTPS", "port": PORT}
    container = {
        "name": "webhook",
        "image": image,
        "args": [
            *("webhook", "serve", "--host", POD_ADDRESS, "--port", str(PORT)),
            *("--cert", "/tls/tls.crt", "--key", "/tls/tls.key"),
            *("--config", "/etc/trustkit/webhook.yaml"),
        ],
        "env": [
            {"name": "SERVIN_CONTENT_TRUST", "value": "1"},
            # each image's trust data in its own registry (the default, said explicitly)
            {"name": "SERVIN_CONTENT_TRUST_SERVER", "value": "registry"},
            {"name": "SERVIN_TRUST_DIR", "value": TRUST_CACHE},
            {"name": "SERVIN_CONFIG", "value": REGISTRY_CONFIG_DIR},
            {"name": "HOME", "value": SCRATCH},
        ],
        "ports": [{"name": "https", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {**probe, "path": "/readyz"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {**probe, "path": "/healthz"}, "periodSeconds": 10},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "2", "memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tls", "mountPath": "/tls", "readOnly": True},
            {"name": "config", "mountPath": "/etc/trustkit", "readOnly": True},
            {"name": "registry-credentials", "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True},
            {"name": "trust-cache", "mountPath": TRUST_CACHE},
            {"name": "tmp", "mountPath": SCRATCH},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _labels()},
        "spec": {
            "replicas": 2,  # failurePolicy is Fail: one replica down must not stop the cluster
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,  # the emptyDirs and Secret files are the group's
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    # spread the replicas: one node going away must not take both
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                        }
                    ],
                    "containers": [container],
                    "volumes": [
                        {"name": "tls", "secret": {"secretName": TLS_SECRET}},
                        {"name": "config", "configMap": {"name": NAME}},
                        {
                            "name": "registry-credentials",
                            "secret": {
                                "secretName": REGISTRY_SECRET,
                                "optional": True,  # public registries need no credentials
                                "defaultMode": 0o440,
                                "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                            },
                        },
                        # verified metadata cached per pod; lost on restart, re-verified then
                        {"name": "trust-cache", "emptyDir": {"sizeLimit": "256Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def _namespace(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                **_labels(),
                # the webhook's pods meet the "restricted" Pod Security Standard
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


def _disruption_budget(namespace: str) -> dict[str, Any]:
    """Voluntary evictions (node drains) keep one replica answering: with failurePolicy Fail,
    no replica means no pod can be created anywhere the webhook applies."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _labels()},
        "spec": {
            "minAvailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
        },
    }


def _config_map(namespace: str) -> dict[str, Any]:
    config = (
        "mode: enforce          # or warn\n"
        "fail_open: false       # an error or an unreachable registry is a denial\n"
        "deadline_seconds: 8    # answer before the API server's 10 s timeout\n"
        "exempt_namespaces: []\n"
        "exempt_images: []\n"
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _labels()},
        "data": {"webhook.yaml": config},
    }


def _service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _labels()},
        "spec": {
            "selector": {"app.kubernetes.io/name": NAME},
            "ports": [{"name": "https", "port": 443, "targetPort": PORT}],
        },
    }


def _network_policy(
    namespace: str, api_server_cidrs: Sequence[str], registry_ports: Sequence[int]
) -> dict[str, Any]:
    """Who may reach the webhook's pods, and what they may reach: the HTTPS port in (from the API
    server's addresses when given: nobody else then holds connections open on it), DNS and the
    registries' ports out. Probes come from the node's kubelet, which NetworkPolicy leaves alone."""
    ingress: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": PORT}]}
    if api_server_cidrs:
        ingress["from"] = [{"ipBlock": {"cidr": cidr}} for cidr in api_server_cidrs]
    dns = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    registries = [{"protocol": "TCP", "port": port} for port in registry_ports]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _labels()},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [ingress],
            "egress": [{"ports": dns}, {"ports": registries}],
        },
    }


def _webhook(
    kind: str, name: str, path: str, namespace: str, ca_bundle: bytes | None
) -> dict[str, Any]:
    client: dict[str, Any] = {
        "service": {"name": NAME, "namespace": namespace, "path": path, "port": 443}
    }
    if ca_bundle is not None:
        client["caBundle"] = base64.b64encode(ca_bundle).decode()
    hook: dict[str, Any] = {
        "name": name,
        "clientConfig": client,
        "rules": [
            {**rule, "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}
            for rule in WORKLOAD_RULES
        ],
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": sorted({namespace, "kube-system"}),
                }
            ]
        },
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "admissionReviewVersions": ["v1", "v1beta1"],
    }
    if kind == "MutatingWebhookConfiguration":
        # another mutator may change an image after us: pin again
        hook["reinvocationPolicy"] = "IfNeeded"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": NAME, "labels": _labels()},
        "webhooks": [hook],
    }


def manifests(
    *,
    namespace: str = "trustkit",
    image: str = "trustkit:latest",
    ca_bundle: bytes | None = None,
    api_server_cidrs: Sequence[str] = (),
    registry_ports: Sequence[int] = (443,),
) -> list[dict[str, Any]]:
    return [
        _namespace(namespace),
        _config_map(namespace),
        _deployment(namespace, image),
        _disruption_budget(namespace),
        _service(namespace),
        _network_policy(namespace, api_server_cidrs, registry_ports),
        _webhook(
            "ValidatingWebhookConfiguration",
            "validate.trustkit.servin.io",
            "/validate",
            namespace,
            ca_bundle,
        ),
        _webhook(
            "MutatingWebhookConfiguration",
            "mutate.trustkit.servin.io",
            "/mutate",
            namespace,
            ca_bundle,
        ),
    ]


def render(documents: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
