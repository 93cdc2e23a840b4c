"""``trustkit webhook``: serve the Kubernetes admission webhook, or print its manifests."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import click

from trustkit.cli._common import services_from
from trustkit.errors import BadInputError

_DNS_LABEL = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
MAX_CA_BUNDLE_BYTES = 1024 * 1024


@click.group("webhook")
def webhook() -> None:
    """Kubernetes admission webhook: the pipeline's verdict for every image a cluster runs."""


@webhook.command("serve")
@click.option(
    "--cert",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="TLS certificate (PEM chain); reloaded when it changes.",
)
@click.option(
    "--key",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="TLS private key (PEM); reloaded when it changes.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Webhook configuration (YAML).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.pass_context
def serve(
    ctx: click.Context,
    cert: Path,
    key: Path,
    host: str,
    port: int,
    config_file: Path | None,
    log_level: str,
) -> None:
    """Serve /validate and /mutate over TLS (plus /healthz, /readyz, /metrics)."""
    from trustkit.webhook.checker import PipelineChecker
    from trustkit.webhook.config import WebhookConfig
    from trustkit.webhook.server import build_server

    config = WebhookConfig.load(config_file) if config_file else WebhookConfig()
    checker = PipelineChecker(services_from(ctx), config.policy_files)
    server = build_server(
        config, cert=cert, key=key, host=host, port=port, checker=checker, log_level=log_level
    )
    server.run()


@webhook.command("manifests")
@click.option("--namespace", default="trustkit", show_default=True)
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="PEM CA that signed the webhook's certificate (becomes caBundle).",
)
@click.option(
    "--image",
    default="trustkit:latest",
    show_default=True,
    help="Container image running trustkit.",
)
@click.option(
    "--registry-port",
    "registry_ports",
    multiple=True,
    type=click.IntRange(1, 65535),
    help="Port the NetworkPolicy lets the webhook reach registries on (repeat; default 443).",
)
@click.option(
    "--api-server-cidr",
    "api_server_cidrs",
    multiple=True,
    help="CIDR the API server calls the webhook from (repeat; default: any source).",
)
def manifests(
    namespace: str,
    ca_bundle: Path | None,
    image: str,
    registry_ports: tuple[int, ...],
    api_server_cidrs: tuple[str, ...],
) -> None:
    """Print Deployment, Service, ConfigMap and webhook configurations as YAML."""
    from trustkit import refs
    from trustkit._fs import read_bounded
    from trustkit.webhook.manifests import manifests as build
    from trustkit.webhook.manifests import render

    if not _DNS_LABEL.match(namespace):
        raise BadInputError(f"--namespace {namespace!r} is not a valid Kubernetes namespace name")
    refs.parse(image)  # refuse an image the cluster could not pull anyway
    bundle = None
    if ca_bundle is not None:
        try:
            bundle = read_bounded(ca_bundle, MAX_CA_BUNDLE_BYTES, what="CA bundle")
        except FileNotFoundError as exc:
            raise BadInputError(f"CA bundle {ca_bundle} does not exist") from exc
        if b"-----BEGIN CERTIFICATE-----" not in bundle:
            raise BadInputError(f"CA bundle {ca_bundle} holds no PEM certificate")
    for cidr in api_server_cidrs:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise BadInputError(f"--api-server-cidr {cidr!r} is not a CIDR") from None
    document = build(
        namespace=namespace,
        image=image,
        ca_bundle=bundle,
        api_server_cidrs=api_server_cidrs,
        registry_ports=registry_ports or (443,),
    )
    click.echo(render(document), nl=False)
