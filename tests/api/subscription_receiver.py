"""A real local webhook receiver for the Subscription tests: an http.server thread on a fixed free
port that can be taken down (connections refused) and brought back on the same port, or told to
answer 500 after it stored a body (so the sender retries what already arrived)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.fail_after_storing = 0  # answer 500 to this many more posts, after keeping them
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> "Receiver":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    owner.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                    failing = owner.fail_after_storing > 0
                    if failing:
                        owner.fail_after_storing -= 1
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        HTTPServer.allow_reuse_address = True
        self._server = HTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bundles(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for body, _ in self.received]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.bundles() if notification_type(b) == kind]


def status_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["entry"][0]["resource"]


def param(parameters: dict[str, Any], name: str) -> Any:
    for p in parameters["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value"))
    return None


def notification_type(bundle: dict[str, Any]) -> str:
    return str(param(status_of(bundle), "type"))


def event_numbers(bundle: dict[str, Any]) -> list[int]:
    out = []
    for p in status_of(bundle)["parameter"]:
        if p["name"] == "notification-event":
            out.append(int(next(part["valueString"] for part in p["part"] if part["name"] == "event-number")))
    return out


def event_focuses(bundle: dict[str, Any]) -> list[str]:
    out = []
    for p in status_of(bundle)["parameter"]:
        if p["name"] == "notification-event":
            out += [part["valueReference"]["reference"] for part in p["part"] if part["name"] == "focus"]
    return out
