"""A faithful stand-in for the MINT Planning API v2.0, on the standard library only.

Dispatchers train against it, ``make run`` starts it when no real MINT is configured, and the
tests drive the real client against it over real HTTP, so it implements the spec's three
endpoints and validation and can be told to misbehave the ways a real server does. The
``/_sandbox/`` control endpoints are not part of the spec.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger("plans.mint.sandbox")

WIRE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
PLAN_FIELDS = (
    "messageId",
    "locationId",
    "transactionId",
    "status",
    "timestamp",
    "scheduledStartTime",
    "scheduledEndTime",
    "expectedRange",
    "averageConsumption",
    "expectedCharge",
)
DEFAULT_BEHAVIOUR: dict[str, Any] = {
    "health_status": 200,
    "health_requires_token": False,
    "health_hang": 0,
    "latency_ms": 0,
    "plan_latency_ms": 0,
    "plan_fail_status": None,
    "plan_fail_count": 0,
    "plan_hang": 0,
    "plan_hang_count": 0,
    "plan_html_502_count": 0,
    "token_ttl": None,
    "reject_all": None,
}
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


def _wire_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


class MintSandbox:
    """An in-process MINT server; start it, point a client at ``.url``, stop it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str,
        client_secret: str,
        base_path: str = "/api/v1.0",
        token_ttl: int = 3600,
        known_location: Callable[[str], bool] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._client_secret = client_secret
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.token_ttl = token_ttl
        self.known_location = known_location
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._tokens: dict[str, datetime] = {}
        self._behaviour: dict[str, Any] = dict(DEFAULT_BEHAVIOUR)
        self._log: list[dict[str, Any]] = []
        self._accepted: list[dict[str, Any]] = []
        self._token_requests = 0
        self._plans_in_flight = 0
        self._plans_in_flight_peak = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"MintSandbox(url={self.url!r}, client_id={self.client_id!r})"

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.base_path}"

    def start(self) -> MintSandbox:
        """Bind (port 0 picks a free one) and serve from a daemon thread."""
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mint-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("MINT sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and wake any request deliberately hanging, so shutdown is prompt.

        Open keep-alive connections are cut too: a client must find the server gone, not keep
        talking to a connection that outlived it.
        """
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MintSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- control -----------------------------------------------------------------------------

    def set_behaviour(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the current behaviour; ``expire_tokens=True`` acts at once.

        ``plan_fail_status`` / ``plan_hang`` given without their ``*_count`` apply until reset.
        """
        unknown = set(changes) - set(DEFAULT_BEHAVIOUR) - {"expire_tokens"}
        if unknown:
            raise ValueError(f"Unknown behaviour key(s): {', '.join(sorted(unknown))}")
        # A misbehaviour given without a count lasts until reset: the least surprising default.
        if "plan_fail_status" in changes:
            changes.setdefault("plan_fail_count", -1)
        if "plan_hang" in changes:
            changes.setdefault("plan_hang_count", -1)
        with self._lock:
            if changes.pop("expire_tokens", False):
                self._tokens.clear()
            self._behaviour.update(changes)
            return dict(self._behaviour)

    @property
    def behaviour(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._behaviour)

    def reset(self) -> None:
        """Forget the log, accepted plans, token count and misbehaviour (tokens stay valid)."""
        with self._lock:
            self._behaviour = dict(DEFAULT_BEHAVIOUR)
            self._log.clear()
            self._accepted.clear()
            self._token_requests = 0
            self._plans_in_flight_peak = 0

    @property
    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    @property
    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._accepted)

    @property
    def token_requests(self) -> int:
        with self._lock:
            return self._token_requests

    @property
    def plans_in_flight_peak(self) -> int:
        """The most ``/plan/`` requests being answered at once since start or reset."""
        with self._lock:
            return self._plans_in_flight_peak

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start: with keep-alive, one per client session."""
        return self._server.connections_opened if self._server else 0

    def plan_message_ids(self) -> list[str | None]:
        """Every messageId seen on /plan/, repeats included, to check retry de-duplication."""
        return [e.get("messageId") for e in self.log if e["endpoint"] == "plan"]

    # --- request handling (called from server threads) --------------------------------------

    def _record(self, endpoint: str, status: int, **extra: Any) -> None:
        entry = {"at": datetime.now(UTC).isoformat(), "endpoint": endpoint, "status": status}
        entry.update(extra)
        with self._lock:
            self._log.append(entry)

    def _pause(self, seconds: float) -> None:
        if seconds and seconds > 0:
            self._stopping.wait(seconds)

    def _take(self, count_key: str) -> bool:
        """Consume one use of a counted misbehaviour; -1 means until reset."""
        with self._lock:
            count = self._behaviour.get(count_key) or 0
            if count == 0:
                return False
            if count > 0:
                self._behaviour[count_key] = count - 1
            return True

    def handle_token(self, body: bytes) -> tuple[int, Any]:
        with self._lock:
            self._token_requests += 1
            ttl = self._behaviour.get("token_ttl") or self.token_ttl
        try:
            data = json.loads(body or b"null")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return 400, [{"message": "Request body must be a JSON object."}]
        client_id, client_secret = data.get("clientId"), data.get("clientSecret")
        if not (
            isinstance(client_id, str)
            and isinstance(client_secret, str)
            and hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self._client_secret.encode())
        ):
            return 401, None
        token = secrets.token_urlsafe(32)
        expires = (datetime.now(UTC) + timedelta(seconds=ttl)).replace(microsecond=0)
        with self._lock:
            self._tokens[token] = expires
        return 200, {"accessToken": token, "expiration": _wire_time(expires)}

    def token_is_valid(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._lock:
            expires = self._tokens.get(token.strip())
        return expires is not None and datetime.now(UTC) < expires

    def handle_plan(self, body: bytes, authorization: str | None) -> tuple[int, Any, str]:
        """Answer a plan request; returns (status, JSON or None, content type override)."""
        with self._lock:
            self._plans_in_flight += 1
            self._plans_in_flight_peak = max(self._plans_in_flight_peak, self._plans_in_flight)
        try:
            return self._answer_plan(body, authorization)
        finally:
            with self._lock:
                self._plans_in_flight -= 1

    def _answer_plan(self, body: bytes, authorization: str | None) -> tuple[int, Any, str]:
        behaviour = self.behaviour
        self._pause(behaviour["plan_latency_ms"] / 1000)
        self._pause(behaviour["plan_hang"] if self._take("plan_hang_count") else 0)
        if behaviour["plan_fail_status"] and self._take("plan_fail_count"):
            return int(behaviour["plan_fail_status"]), None, ""
        if self._take("plan_html_502_count"):
            return 502, HTML_502, "text/html"
        if not self.token_is_valid(authorization):
            return 401, None, ""
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 400, [{"message": "Request body must be a JSON object."}], ""
        if behaviour["reject_all"]:
            return 400, [{"message": str(m)} for m in behaviour["reject_all"]], ""
        problems = self.validate_plan(payload)
        if problems:
            return 400, [{"message": m} for m in problems], ""
        with self._lock:
            self._accepted.append(payload)
        return 200, None, ""

    def validate_plan(self, payload: Any) -> list[str]:
        """Every problem with a plan body at once, each naming the field as MINT spells it."""
        if not isinstance(payload, dict):
            return ["Request body must be a JSON object."]
        problems = [f"Unknown field '{name}'." for name in payload if name not in PLAN_FIELDS]

        for name in ("messageId", "transactionId"):
            value = payload.get(name)
            if value is None:
                problems.append(f"{name}: is required.")
            elif not isinstance(value, str) or not UUID_RE.match(value):
                problems.append(f"{name}: must be a UUID.")

        location = payload.get("locationId")
        if location is None:
            problems.append("locationId: is required.")
        elif not isinstance(location, str) or not location.strip():
            problems.append("locationId: must be a non-empty string.")
        elif self.known_location is not None and not self.known_location(location):
            problems.append(f"Unknown locationId '{location}'.")

        if "status" in payload and not isinstance(payload["status"], str):
            problems.append("status: must be a string (it may be empty).")

        times: dict[str, datetime] = {}
        for name in ("timestamp", "scheduledStartTime", "scheduledEndTime"):
            parsed, problem = self._parse_time(name, payload.get(name))
            if problem:
                problems.append(problem)
            elif parsed is not None:
                times[name] = parsed
        start, end = times.get("scheduledStartTime"), times.get("scheduledEndTime")
        if start and end and end <= start:
            problems.append("scheduledEndTime: must be after scheduledStartTime.")

        has_range, has_charge = "expectedRange" in payload, "expectedCharge" in payload
        if has_range and has_charge:
            problems.append("Use either expectedRange or expectedCharge, not both.")
        elif not has_range and not has_charge:
            problems.append("One of expectedRange or expectedCharge is required.")
        if has_range and not _is_positive_int(payload["expectedRange"]):
            problems.append("expectedRange: must be a positive integer (km).")
        if has_charge and not _is_positive_int(payload["expectedCharge"]):
            problems.append("expectedCharge: must be a positive integer (kWh).")
        if "averageConsumption" in payload:
            if not has_range:
                problems.append("averageConsumption: is only allowed with expectedRange.")
            if not _is_positive_number(payload["averageConsumption"]):
                problems.append("averageConsumption: must be a positive number (kWh/100 km).")
        return problems

    @staticmethod
    def _parse_time(name: str, value: Any) -> tuple[datetime | None, str]:
        if value is None:
            return None, f"{name}: is required."
        if isinstance(value, str) and WIRE_TIME_RE.match(value):
            try:
                return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC), ""
            except ValueError:
                return None, f"{name}: '{value}' is not a real date and time."
        if isinstance(value, str):
            try:
                other = datetime.fromisoformat(value)
            except ValueError:
                other = None
            if other is not None and other.utcoffset() not in (None, timedelta(0)):
                return None, f"{name}: must be in UTC, written as YYYY-MM-DDTHH:MM:SSZ."
        return None, f"{name}: must be written as YYYY-MM-DDTHH:MM:SSZ."


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: MintSandbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self.connections_opened = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
            self.connections_opened += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("MINT sandbox: error while handling %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """One connection. HTTP/1.1 with keep-alive, as production HTTPS servers speak it: a client
    session reuses its connection instead of paying a TCP handshake per request (every answer
    carries Content-Length). An idle connection is closed after ``timeout`` seconds."""

    server: _Server
    server_version = "MintSandbox/2.0"
    protocol_version = "HTTP/1.1"
    timeout = 60

    @property
    def sandbox(self) -> MintSandbox:
        return self.server.sandbox

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("MINT sandbox: " + format, *args)

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its read timeout beat plan_hang); nothing to answer.
            logger.debug("MINT sandbox: client went away")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, payload: Any = None, content_type: str = "") -> None:
        if payload is None:
            data = b""
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
        else:
            data = json.dumps(payload).encode("utf-8")
            content_type = content_type or "application/json"
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type or "application/json")
        if status in (429, 503):
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _route(self) -> str | None:
        """The spec endpoint name for this path, or None when it is not under base_path."""
        path = self.path.split("?", 1)[0]
        base = self.sandbox.base_path
        if not path.startswith(base + "/"):
            return None
        return {"/auth/token": "token", "/health/": "health", "/plan/": "plan"}.get(
            path[len(base) :]
        )

    def _control(self, method: str) -> bool:
        path = self.path.split("?", 1)[0].rstrip("/")
        if not path.startswith("/_sandbox"):
            return False
        sandbox = self.sandbox
        if method == "GET" and path == "/_sandbox/behaviour":
            self._send(200, sandbox.behaviour)
        elif method == "GET" and path == "/_sandbox/log":
            self._send(200, sandbox.log)
        elif method == "POST" and path == "/_sandbox/reset":
            self._body()
            sandbox.reset()
            self._send(200, {})
        elif method == "POST" and path == "/_sandbox/behaviour":
            try:
                changes = json.loads(self._body() or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("behaviour must be a JSON object")
                self._send(200, sandbox.set_behaviour(**changes))
            except ValueError as exc:
                self._send(400, [{"message": str(exc)}])
        else:
            self._send(404)
        return True

    def do_GET(self) -> None:
        if self._control("GET"):
            return
        if self._route() != "health":
            self._send(404)
            return
        behaviour = self.sandbox.behaviour
        self.sandbox._pause(behaviour["latency_ms"] / 1000)
        self.sandbox._pause(behaviour["health_hang"])
        status = int(behaviour["health_status"])
        if behaviour["health_requires_token"] and not self.sandbox.token_is_valid(
            self.headers.get("Authorization")
        ):
            status = 401  # spec 3.2.2: "an access token is required" for any endpoint
        self.sandbox._record("health", status)
        self._send(status)

    def do_POST(self) -> None:
        if self._control("POST"):
            return
        endpoint = self._route()
        if endpoint not in ("token", "plan"):
            self._body()
            self._send(404)
            return
        body = self._body()
        if len(body) < int(self.headers.get("Content-Length") or 0):
            # The client went away halfway through its request (killed, say): nothing arrived
            # to answer, and nothing is logged as if it had.
            self.close_connection = True
            return
        self.sandbox._pause(self.sandbox.behaviour["latency_ms"] / 1000)
        if endpoint == "token":
            status, payload = self.sandbox.handle_token(body)
            self.sandbox._record("token", status)
            self._send(status, payload)
            return
        try:
            status, payload, content_type = self.sandbox.handle_plan(
                body, self.headers.get("Authorization")
            )
        except Exception:
            logger.exception("MINT sandbox: plan handling failed")
            status, payload, content_type = 500, None, ""
        self.sandbox._record("plan", status, messageId=_message_id(body))
        self._send(status, payload, content_type)


def _message_id(body: bytes) -> str | None:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    value = data.get("messageId") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
