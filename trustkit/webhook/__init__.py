"""Kubernetes admission webhook: the pipeline's verdict for every image a cluster would run.

Heavy imports (starlette, uvicorn) happen inside ``create_app`` and ``build_server`` only.
"""

from trustkit.webhook.checker import ImageChecker, KeyedChecker, PipelineChecker, PreparedChecker
from trustkit.webhook.config import WebhookConfig

__all__ = [
    "ImageChecker",
    "KeyedChecker",
    "PipelineChecker",
    "PreparedChecker",
    "WebhookConfig",
    "build_server",
    "create_app",
]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from trustkit.webhook.app import create_app

        return create_app
    if name == "build_server":
        from trustkit.webhook.server import build_server

        return build_server
    raise AttributeError(name)
