"""AdmissionReview in and out: find every image a request would run, and shape the answer.

Pure functions over parsed JSON; no I/O. Paths are JSON Pointers into ``request.object`` so that
``/mutate`` can patch exactly the field an image came from.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trustkit.errors import MalformedAdmissionReviewError

API_V1 = "admission.k8s.io/v1"
API_V1BETA1 = "admission.k8s.io/v1beta1"
SUPPORTED_API_VERSIONS = (API_V1, API_V1BETA1)
MAX_WARNING_CHARS = 256  # the API server truncates longer warnings anyway

# kind -> JSON Pointer of its pod spec inside the object
POD_SPEC_PATHS: dict[str, str] = {
    "Pod": "/spec",
    "PodTemplate": "/template/spec",
    "Deployment": "/spec/template/spec",
    "ReplicaSet": "/spec/template/spec",
    "StatefulSet": "/spec/template/spec",
    "DaemonSet": "/spec/template/spec",
    "Job": "/spec/template/spec",
    "ReplicationController": "/spec/template/spec",
    "CronJob": "/spec/jobTemplate/spec/template/spec",
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


#: the webhook's old name for it
MalformedReview = MalformedAdmissionReviewError


@dataclass(frozen=True, slots=True)
class ImageSite:
    """One image a pod would run or mount: where it is in the object and what it says."""

    pointer: str  # e.g. /spec/template/spec/containers/0/image, .../volumes/1/image/reference
    container: str  # the container's name, or "volume <name>" for an image volume
    image: str


@dataclass(frozen=True, slots=True)
class Review:
    api_version: str
    uid: str
    kind: str
    operation: str
    namespace: str | None
    sub_resource: str | None
    obj: Mapping[str, Any] | None
    old_obj: Mapping[str, Any] | None


def parse_review(body: Any) -> Review:
    if not isinstance(body, dict):
        raise MalformedReview("the body is not a JSON object")
    api_version = body.get("apiVersion")
    if api_version not in SUPPORTED_API_VERSIONS:
        raise MalformedReview(f"unsupported apiVersion {api_version!r}")
    if body.get("kind") != "AdmissionReview":
        raise MalformedReview("kind must be AdmissionReview")
    request = body.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("request is missing")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 128:
        raise MalformedReview("request.uid is missing or invalid")
    kind = request.get("kind")
    kind_name = kind.get("kind") if isinstance(kind, dict) else None
    obj = request.get("object")
    old = request.get("oldObject")
    namespace = request.get("namespace")
    sub = request.get("subResource")
    return Review(
        api_version=api_version,
        uid=uid,
        kind=kind_name if isinstance(kind_name, str) else "",
        operation=str(request.get("operation") or ""),
        namespace=namespace if isinstance(namespace, str) else None,
        sub_resource=sub if isinstance(sub, str) and sub else None,
        obj=obj if isinstance(obj, dict) else None,
        old_obj=old if isinstance(old, dict) else None,
    )


def _resolve(doc: Any, pointer: str) -> Any:
    for part in pointer.strip("/").split("/") if pointer.strip("/") else ():
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


#: kind -> the keys leading from the object to its pod spec (``POD_SPEC_PATHS``, split once)
_POD_SPEC_KEYS: dict[str, tuple[str, ...]] = {
    kind: tuple(path.strip("/").split("/")) for kind, path in POD_SPEC_PATHS.items()
}


def _sites(obj: Mapping[str, Any] | None, kind: str, lists: tuple[str, ...]) -> list[ImageSite]:
    """Every image-bearing field of the pod spec: the container lists asked for and, unless only
    ephemeral containers are being added, image volumes (``volumes[].image.reference``). A field
    of the wrong shape is refused, never skipped: skipping is how an image gets in unchecked."""
    spec_path = POD_SPEC_PATHS.get(kind)
    if obj is None or spec_path is None:
        return []
    spec: Any = obj
    for key in _POD_SPEC_KEYS[kind]:  # the spec paths hold no list indices
        spec = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        raise MalformedReview(f"{kind} has no pod spec at {spec_path}")
    sites: list[ImageSite] = []
    for list_name in lists:
        containers = spec.get(list_name)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise MalformedReview(f"{spec_path}/{list_name} is not a list")
        for index, container in enumerate(containers):
            if not isinstance(container, dict):
                raise MalformedReview(f"{spec_path}/{list_name}/{index} is not an object")
            image = container.get("image")
            if image is None or image == "":
                continue  # the API server's own validation refuses a pod without an image
            pointer = f"{spec_path}/{list_name}/{index}/image"
            if not isinstance(image, str):
                raise MalformedReview(f"{pointer} is not a string")
            name = container.get("name")
            sites.append(
                ImageSite(
                    pointer=pointer,
                    container=name if isinstance(name, str) else f"{list_name}[{index}]",
                    image=image,
                )
            )
    if lists != CONTAINER_LISTS:
        return sites  # pods/ephemeralcontainers cannot change volumes
    volumes = spec.get("volumes")
    if volumes is None:
        return sites
    if not isinstance(volumes, list):
        raise MalformedReview(f"{spec_path}/volumes is not a list")
    for index, volume in enumerate(volumes):
        if not isinstance(volume, dict):
            raise MalformedReview(f"{spec_path}/volumes/{index} is not an object")
        source = volume.get("image")
        if source is None:
            continue  # not an image volume
        if not isinstance(source, dict):
            raise MalformedReview(f"{spec_path}/volumes/{index}/image is not an object")
        pointer = f"{spec_path}/volumes/{index}/image/reference"
        if _site(source.get("reference"), pointer) is None:
            continue  # as for containers: the API server refuses a pod whose volume has none
        name = volume.get("name")
        sites.append(
            ImageSite(
                pointer=pointer,
                container=f"volume {name}" if isinstance(name, str) else f"volumes[{index}]",
                image=source["reference"],
            )
        )
    return sites


def _site(image: Any, pointer: str) -> str | None:
    """``pointer`` when ``image`` is a reference to check, None when absent; refuses non-strings."""
    if image is None or image == "":
        return None
    if not isinstance(image, str):
        raise MalformedReview(f"{pointer} is not a string")
    return pointer


def images_to_check(review: Review) -> list[ImageSite]:
    """The images this request would start running.

    CREATE: every image. UPDATE: only images that are new or changed, because untouched ones were
    admitted before, and every new pod goes through its own CREATE anyway; a label change must not
    be refused (or pinned, restarting containers) over an image that is already running. The
    ``pods/ephemeralcontainers`` subresource only adds ephemeral containers.
    """
    if review.operation not in ("CREATE", "UPDATE"):
        return []
    lists: tuple[str, ...] = CONTAINER_LISTS
    if review.sub_resource == "ephemeralcontainers":
        lists = ("ephemeralContainers",)
    elif review.sub_resource is not None:
        return []  # status, binding, ...: no new image runs
    sites = _sites(review.obj, review.kind, lists)
    if review.operation == "UPDATE" and review.old_obj is not None:
        sites = [s for s in sites if _resolve(review.old_obj, s.pointer) != s.image]
    return sites


def response(
    review: Review,
    *,
    allowed: bool,
    message: str | None = None,
    warnings: list[str] | None = None,
    audit: dict[str, str] | None = None,
    patch: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    answer: dict[str, Any] = {"uid": review.uid, "allowed": allowed}
    if not allowed:
        answer["status"] = {
            "code": 403,
            "status": "Failure",
            "reason": "Forbidden",
            "message": message or "refused by trustkit",
        }
    if warnings:
        answer["warnings"] = [_shorten(w) for w in warnings]
    if audit:
        answer["auditAnnotations"] = audit
    if patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": answer}


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 1] + "…"


def pinned_image(image: str, digest: str) -> str:
    """``name[:tag]`` → ``name@digest``, keeping the name as the user spelled it."""
    slash = image.rfind("/")
    colon = image.rfind(":")
    name = image[:colon] if colon > slash else image
    return f"{name}@{digest}"
