"""The webhook under hostile load (issue 14): images hidden in fields the webhook did not look at,
registries that drip bytes, and clients that open connections and never finish a request.

Real webhook over TLS on loopback, the real pipeline and real registries on 127.0.0.1; the slow
"drip" registry is a small socket server (fault injection). Every test bounds its own time.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fixtures.pipeline import PipelineWorld
from fixtures.webhook import ServedWebhook, TableChecker, WebhookServerFactory

from trustkit.verdict import Action, Context, Verdict
from trustkit.webhook import PipelineChecker
from trustkit.webhook.review import images_to_check, parse_review

SIGNED = "registry.example/team/app:v1"
SIGNED_DIGEST = "sha256:" + "ab" * 32


def allowed_table() -> dict[str, Verdict]:
    return {
        SIGNED: Verdict(SIGNED, Context.ADMISSION, True, Action.ALLOW, SIGNED_DIGEST, reasons=())
    }


def review(kind: str, obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "hostile-1",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": operation,
            "namespace": "default",
            "object": obj,
        },
    }


def pod_spec(volume_image: str, **extra: Any) -> dict[str, Any]:
    return {
        "containers": [{"name": "app", "image": SIGNED}],
        "volumes": [
            {"name": "config", "configMap": {"name": "cfg"}},
            {"name": "models", "image": {"reference": volume_image, "pullPolicy": "Always"}},
        ],
        **extra,
    }


def workload(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` placed where ``kind`` keeps its pod spec."""
    template = {"metadata": {"labels": {"app": "x"}}, "spec": spec}
    if kind == "Pod":
        return {"metadata": {"name": "p"}, "spec": spec}
    if kind == "PodTemplate":
        return {"metadata": {"name": "t"}, "template": template}
    if kind == "CronJob":
        return {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}
    return {"spec": {"template": template}}


def post(served: ServedWebhook, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = served.client(timeout=30).post(path, json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()["response"]
    return answer


# --- image volumes and every image-bearing field ----------------------------------------------
KINDS = [
    "Pod",
    "PodTemplate",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_unsigned_image_volume_is_refused_in_every_workload_kind(
    webhook_server: WebhookServerFactory, kind: str
) -> None:
    served = webhook_server(TableChecker(allowed_table()))
    unsigned = "registry.example/evil/payload:v1"
    answer = post(served, "/validate", review(kind, workload(kind, pod_spec(unsigned))))
    assert answer["allowed"] is False
    assert unsigned in answer["status"]["message"]
    # the signed container alone is allowed: the volume is what was refused
    clean = pod_spec(SIGNED)
    assert post(served, "/validate", review(kind, workload(kind, clean)))["allowed"] is True


@pytest.mark.timeout(60)
def test_image_volume_is_pinned_like_a_container(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(allowed_table()))
    answer = post(served, "/mutate", review("Pod", workload("Pod", pod_spec(SIGNED))))
    assert answer["allowed"] is True
    patch = json.loads(base64.b64decode(answer["patch"]))
    pinned = "registry.example/team/app@" + SIGNED_DIGEST
    assert {"op": "replace", "path": "/spec/volumes/1/image/reference", "value": pinned} in patch
    assert {"op": "replace", "path": "/spec/containers/0/image", "value": pinned} in patch


@pytest.mark.parametrize(
    "spec",
    [
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": {"x": 1}},
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": ["not-an-object"]},
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": [{"name": "v", "image": "x"}]},
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": [{"image": {"reference": 7}}]},
        {"containers": [{"name": "a", "image": ["evil:1"]}]},
    ],
    ids=[
        "volumes-not-list",
        "volume-not-object",
        "image-not-object",
        "reference-not-string",
        "image-not-string",
    ],
)
def test_image_fields_of_the_wrong_shape_are_refused(spec: dict[str, Any]) -> None:
    from trustkit.webhook.review import MalformedReview

    with pytest.raises(MalformedReview):
        images_to_check(parse_review(review("Deployment", workload("Deployment", spec))))


@pytest.mark.parametrize("kind", KINDS)
def test_a_workload_without_a_pod_spec_is_refused_not_skipped(kind: str) -> None:
    from trustkit.webhook.review import MalformedReview

    obj: dict[str, Any] = {"metadata": {"name": "x"}, "spec": "containers: [evil]"}
    with pytest.raises(MalformedReview):
        images_to_check(parse_review(review(kind, obj)))


@pytest.mark.timeout(60)
def test_malformed_volume_denied_over_tls(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(allowed_table()))
    spec = {"containers": [{"name": "a", "image": SIGNED}], "volumes": [{"image": ["evil:1"]}]}
    reply = served.client(timeout=30).post("/validate", json=review("Pod", workload("Pod", spec)))
    # the API server treats a non-200 answer as a failed call: failurePolicy Fail denies the pod
    assert reply.status_code == 400
    assert "volumes/0/image is not an object" in reply.json()["error"]


@pytest.mark.registry
@pytest.mark.timeout(120)
def test_unsigned_image_volume_denied_by_the_real_pipeline(
    webhook_server: WebhookServerFactory, pipeline_world: PipelineWorld
) -> None:
    served = webhook_server(PipelineChecker(pipeline_world.settings))
    signed, unsigned = pipeline_world.ref("noscan"), pipeline_world.ref("unsigned")
    spec = {
        "containers": [{"name": "app", "image": signed}],
        "volumes": [{"name": "data", "image": {"reference": unsigned}}],
    }
    answer = post(served, "/validate", review("Deployment", workload("Deployment", spec)))
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert message.startswith("trustkit refused 1 image(s): ")
    assert unsigned in message and signed not in message
