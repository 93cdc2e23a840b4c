"""TLS from certificate and key files, reloaded in place when either file changes.

New handshakes use the new certificate; open connections keep theirs. A new pair is first loaded
into a scratch context, so a half-written rotation (new cert, old key) never breaks the live one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

from trustkit.errors import BadInputError

log = logging.getLogger("trustkit.webhook")


def _new_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class ReloadingTLS:
    def __init__(self, cert: Path, key: Path, *, interval: float = 2.0) -> None:
        self.cert = cert
        self.key = key
        self.interval = interval
        self.context = _new_context()
        self.reloads = 0
        try:
            self.context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise BadInputError(f"cannot load TLS certificate {cert} and key {key}: {exc}") from exc
        self._stamp = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in (self.cert, self.key):
            try:
                st = os.stat(path)
            except OSError:
                return ()
            stamps.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def reload_if_changed(self) -> bool:
        stamp = self._fingerprint()
        if not stamp or stamp == self._stamp:
            return False
        try:
            _new_context().load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS files changed but do not load yet (%s); keeping the old pair", exc)
            return False
        self.context.load_cert_chain(str(self.cert), str(self.key))
        self._stamp = stamp
        self.reloads += 1
        log.info("reloaded TLS certificate %s", self.cert)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.reload_if_changed()
            except Exception:  # a watcher must never die
                log.exception("TLS reload failed")
