"""Persistent hook mode: one long-lived process answers servin's hooks over a Unix socket.

Saves the interpreter start-up and keeps the verified trust metadata and policies warm between
pulls; the process builds one ``Services`` (registry pool, key store) and every request uses it.
Framing: one JSON line per request, ``{"hook": "pre-pull", "request": {...}}``, answered
by one JSON line ``{"exit": N, "answer": {...}}``. The socket is created 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from pathlib import Path
from typing import Any

from trustkit.config import Settings
from trustkit.errors import EXIT_INTERNAL, BadInputError, internal_error_line
from trustkit.hooks import MAX_REQUEST_BYTES, handle
from trustkit.services import Services, as_services

_LINE_LIMIT = MAX_REQUEST_BYTES + 1024


def _refusal(err: BadInputError) -> dict[str, Any]:
    return {"exit": err.exit_code, "answer": {"allow": False, "error": err.one_line()}}


def answer_line(services: Services | Settings, line: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(line)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return _refusal(BadInputError(f"malformed hook envelope: {reason}"))
    if not isinstance(envelope, dict):
        return _refusal(BadInputError("malformed hook envelope: not an object"))
    stage = envelope.get("hook")
    request = envelope.get("request")
    if not isinstance(stage, str) or not isinstance(request, dict):
        return _refusal(
            BadInputError('malformed hook envelope: needs "hook" (string) and "request" (object)')
        )
    code, answer = handle(services, stage, json.dumps(request).encode())
    return {"exit": code, "answer": answer}


def _safe_answer(services: Services, line: bytes) -> dict[str, Any]:
    """``answer_line``, with a last resort: a bug still answers one refusing JSON line."""
    try:
        return answer_line(services, line)
    except Exception as exc:
        return {
            "exit": EXIT_INTERNAL,
            "answer": {"allow": False, "error": internal_error_line(exc)},
        }


class _Handler(socketserver.StreamRequestHandler):
    server: HookServer

    def handle(self) -> None:
        while True:
            line = self.rfile.readline(_LINE_LIMIT)
            if not line:
                return
            if len(line) >= _LINE_LIMIT and not line.endswith(b"\n"):
                err = BadInputError("hook request line too long")
                reply: dict[str, Any] = {
                    "exit": err.exit_code,
                    "answer": {"allow": False, "error": err.one_line()},
                }
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                return
            reply = _safe_answer(self.server.services, line)
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class HookServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, services: Services | Settings, socket_path: Path) -> None:
        self.services = as_services(services)  # one per process: pooled clients, warm key store
        self.settings = self.services.settings
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        old = os.umask(0o177)
        try:
            super().__init__(str(socket_path), _Handler)
        finally:
            os.umask(old)


def serve(services: Services | Settings, socket_path: Path) -> None:
    with HookServer(services, socket_path) as server:
        try:
            server.serve_forever()
        finally:
            server.services.close()


def start_background(
    services: Services | Settings, socket_path: Path
) -> tuple[HookServer, threading.Thread]:
    """For tests and benchmarks: serve in a thread; call ``server.shutdown()`` to stop."""
    server = HookServer(services, socket_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
