"""Persistent hook mode: one long-lived process answers servin's hooks over a Unix socket.

Saves the interpreter start-up and keeps the verified trust metadata and policies warm between
pulls. Framing: one JSON line per request, ``{"hook": "pre-pull", "request": {...}}``, answered
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
from trustkit.errors import BadInputError
from trustkit.hooks import MAX_REQUEST_BYTES, handle

_LINE_LIMIT = MAX_REQUEST_BYTES + 1024


def answer_line(settings: Settings, line: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(line)
        if not isinstance(envelope, dict):
            raise ValueError("not an object")
        stage = envelope.get("hook")
        request = envelope.get("request")
        if not isinstance(stage, str) or not isinstance(request, dict):
            raise ValueError('needs "hook" (string) and "request" (object)')
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        err = BadInputError(f"malformed hook envelope: {reason}")
        return {"exit": err.exit_code, "answer": {"allow": False, "error": err.one_line()}}
    code, answer = handle(settings, stage, json.dumps(request).encode())
    return {"exit": code, "answer": answer}


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
            reply = answer_line(self.server.settings, line)
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class HookServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, settings: Settings, socket_path: Path) -> None:
        self.settings = settings
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        old = os.umask(0o177)
        try:
            super().__init__(str(socket_path), _Handler)
        finally:
            os.umask(old)


def serve(settings: Settings, socket_path: Path) -> None:
    with HookServer(settings, socket_path) as server:
        server.serve_forever()


def start_background(settings: Settings, socket_path: Path) -> tuple[HookServer, threading.Thread]:
    """For tests and benchmarks: serve in a thread; call ``server.shutdown()`` to stop."""
    server = HookServer(settings, socket_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
