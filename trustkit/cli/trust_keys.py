"""``trustkit trust key``: generate and load signing keys (Docker's ``docker trust key``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trustkit._fs import read_protected
from trustkit.cli._common import echo_json, services_from, settings_from
from trustkit.errors import BadInputError, KeyStoreError, StorageError

if TYPE_CHECKING:
    from trustkit.keys import KeyRecord, KeyStore
    from trustkit.services import Services

# Spelled out rather than imported: trustkit.keys pulls in securesystemslib and cryptography
# (~70 ms), which `trustkit trust --help` must not pay. tests/test_keys_cli.py checks they match.
KEY_TYPES = ("ecdsa", "ed25519")
KEY_ROLES = ("root", "targets", "snapshot", "timestamp", "delegation", "scanner")
SIGNER_ROLES = ("delegation", "scanner")
MAX_KEY_FILE = 64 * 1024


@click.group("key")
def key() -> None:
    """Generate, load and list signing keys."""


# generate and load both take it
_role_option = click.option(
    "--role",
    type=click.Choice(SIGNER_ROLES),
    default="delegation",
    show_default=True,
    help="delegation: signs tags; scanner: signs scan attestations.",
)


@key.command("generate")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(),
    help="Where to write NAME.pub (default: the current directory).",
)
@click.option("--type", "keytype", type=click.Choice(KEY_TYPES), default="ecdsa", show_default=True)
@_role_option
@click.pass_context
def generate(ctx: click.Context, name: str, directory: Path, keytype: str, role: str) -> None:
    """Generate a signer key NAME: private half in the key store, public half in DIR/NAME.pub."""
    from trustkit.keys import check_name, generate_public_file

    check_name(name)
    store = services_from(ctx).keys
    click.echo(f"Generating {keytype} key for {name}...", err=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {directory}: {exc.strerror}") from exc
    pub_path = directory / f"{name}.pub"
    record = generate_public_file(store, pub_path, role=role, name=name, keytype=keytype)
    click.echo(
        "Successfully generated and loaded private key. "
        f"Corresponding public key available: {pub_path.resolve()}",
        err=True,
    )
    click.echo(record.keyid)


@key.command("load")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", default=None, help="Signer name for the key (default: the file's stem).")
@click.option(
    "--role",
    type=click.Choice((*SIGNER_ROLES, "targets", "root")),
    default=None,
    help="delegation (default): signs tags; scanner: signs scan attestations; targets, root: "
    "a repository's keys, e.g. from ~/.docker/trust/private (default: the file's own "
    "'role:' header when it has one).",
)
@click.pass_context
def load(ctx: click.Context, file: Path, name: str | None, role: str | None) -> None:
    """Import a PEM private key FILE (plain or encrypted; docker/notary key files too).

    An encrypted file is opened with its own passphrase (SERVIN_CONTENT_TRUST_IMPORT_PASSPHRASE,
    else the repository passphrase variable as docker does, else a prompt); the key store keeps
    it under the root or repository passphrase."""
    from trustkit.keys import KeyStore, PassphraseSource, check_name, is_encrypted_pem

    pem = _read_private_file(file)
    header_role, header_gun = _notary_headers(pem)
    if role is None and header_role in ("snapshot", "timestamp"):
        raise BadInputError(
            f"{file} is a Notary {header_role} key: trustkit makes its own (or the "
            "notary-server signs that role)",
            hint="import the root, targets and signer keys: trustkit trust key load FILE",
        )
    delegated = header_role is not None and header_role not in ("root", "targets")
    # `notary key generate --role alice` writes "role: alice"; DCT writes "targets/releases"
    signer_name = header_role if delegated and "/" not in str(header_role) else None
    role = role or ("delegation" if delegated else header_role) or "delegation"
    name = check_name(name if name is not None else signer_name or file.stem)
    settings = settings_from(ctx)
    passphrases = PassphraseSource(settings)
    file_passphrase = None
    if is_encrypted_pem(pem):
        file_passphrase = (
            settings.import_passphrase
            or settings.repository_passphrase
            or passphrases.ask_once(f"encrypted key file {file}")
        )
    store = KeyStore(settings, passphrases)
    record = store.import_private_pem(
        pem, role=role, name=name, gun=header_gun, pem_passphrase=file_passphrase
    )
    click.echo(f"Successfully imported key from {file} as {role} key {name}", err=True)
    click.echo(_shown_keyid(settings, record))


def _notary_headers(pem: bytes) -> tuple[str | None, str | None]:
    """The ``role:`` and ``gun:`` headers notary and docker write into their key files
    (``role: alice`` for signer alice's key, ``role: targets`` with ``gun: REPO``...)."""
    role = gun = None
    for line in pem.decode("ascii", "replace").splitlines()[:8]:
        key, _, value = line.partition(":")
        if key.strip() == "role" and value.strip():
            role = value.strip()
        elif key.strip() == "gun" and value.strip():
            gun = value.strip()
    return role, gun


def _shown_keyid(settings: object, record: KeyRecord) -> str:
    """Key ids as docker shows them: on a notary-server, notary's ids (``notary key list``,
    ``docker trust inspect``); elsewhere the TUF key id."""
    from trustkit.config import Settings

    if isinstance(settings, Settings) and settings.trust_store_url.startswith(
        ("https://", "http://")
    ):
        return _notary_keyid_or_none(record) or record.keyid
    return record.keyid


def _read_private_file(file: Path) -> bytes:
    # checked on the open file (no stat-then-read race): regular, yours, readable by you only
    try:
        return read_protected(
            file, MAX_KEY_FILE, what="private key file", error=KeyStoreError, secret=True
        )
    except FileNotFoundError:
        raise BadInputError(f"{file} does not exist") from None


@key.command("list")
@click.option("--role", type=click.Choice(KEY_ROLES), default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (-o json).")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default=None)
@click.option("--no-trunc", is_flag=True, help="Show whole key ids.")
@click.pass_context
def list_keys(
    ctx: click.Context, role: str | None, as_json: bool, output: str | None, no_trunc: bool
) -> None:
    """List the keys in the key store (public information only). STATUS says whether a
    repository's key is still one its trust data names (current) or was rotated out
    (retired); "-" for keys not tied to one repository's top-level role."""
    services = services_from(ctx)
    store = services.keys
    records = store.records(role=role)
    if as_json or output == "json":
        echo_json(
            [
                {
                    "keyid": r.keyid,
                    "notary_keyid": _notary_keyid_or_none(r),
                    "role": r.role,
                    "gun": r.gun,
                    "name": r.name,
                    "keytype": r.keytype,
                    "created": r.created.isoformat(),
                    "private": store.has_private(r.keyid),
                    "uri": r.uri,
                }
                for r in records
            ]
        )
        return
    collections: dict[str, Any] = {}  # one load per repository
    rows = []
    for r in records:
        shown = _shown_keyid(services.settings, r)  # notary's ids on a notary-server
        status = _key_status(services, r, collections)
        name = r.name or "-"
        rows.append(
            (shown if no_trunc else shown[:12], r.role, r.keytype, status, r.gun or "-", name)
        )
    header = ("KEY ID", "ROLE", "TYPE", "STATUS", "REPOSITORY", "NAME")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


def _key_status(services: Services, record: KeyRecord, collections: dict[str, Any]) -> str:
    """current / retired for a repository's top-level key, by its collection's root."""
    if record.gun is None or record.role not in ("root", "targets", "snapshot", "timestamp"):
        return "-"
    from trustkit.collections.repository import Collection
    from trustkit.errors import TrustkitError

    if record.gun not in collections:
        try:
            collections[record.gun] = Collection.load(services.store, record.gun)
        except TrustkitError:
            collections[record.gun] = None
    collection = collections[record.gun]
    if collection is None:
        return "unknown"
    return "current" if record.keyid in collection.keyids_of(record.role) else "retired"


def _notary_keyid_or_none(record: KeyRecord) -> str | None:
    """The id notary and docker show for this key (None for a key Notary cannot hold)."""
    from trustkit.notary.writer import notary_keyid

    try:
        return notary_keyid(record.public_key)
    except (BadInputError, ValueError):
        return None


@key.command("import-uri")
@click.argument("uri")
@click.option("--name", required=True, help="Name of the key in the key store.")
@click.option(
    "--role",
    type=click.Choice(KEY_ROLES),
    required=True,
    help="The role the key is for (a root, targets, snapshot or timestamp key is put to use "
    "with 'trust key rotate REPO --role ROLE --key NAME').",
)
@click.pass_context
def import_uri(ctx: click.Context, uri: str, name: str, role: str) -> None:
    """Record an online key held by an HSM or a KMS, by its signer URI.

    URI is hsm:ID[?label=TOKEN] (PKCS#11: module from PYKCS11LIB, PIN from SERVIN_HSM_PIN or
    a prompt), awskms:KEY, gcpkms:RESOURCE, azurekms://VAULT.vault.azure.net/keys/NAME or
    hv:NAME (Vault transit). The public key is read through the signer; no private key file
    is written.
    """
    from trustkit.keys import check_name

    check_name(name)
    store = services_from(ctx).keys
    if store.records(name=name, role=role):
        raise KeyStoreError(f"there is already a {role} key named {name} in the key store")
    record = store.import_uri(uri, role=role, name=name)
    click.echo(f"Imported {role} key {name} ({record.keytype}) at {record.uri}", err=True)
    click.echo(record.keyid)


def named_key(store: KeyStore, name: str, role: str) -> KeyRecord:
    """The one key called ``name`` for ``role`` in the key store (for ``rotate --key``)."""
    found = store.records(name=name, role=role)
    if not found:
        others = sorted({r.role for r in store.records(name=name)})
        hint = f"it is recorded as a {', '.join(others)} key" if others else None
        raise KeyStoreError(f"no {role} key named {name} in the key store", hint=hint)
    if len(found) > 1:
        raise KeyStoreError(f"several {role} keys are named {name}: remove all but one")
    record = found[0]
    if not store.has_private(record.keyid):
        raise KeyStoreError(f"the private half of the {role} key {name} is not in the key store")
    return record
