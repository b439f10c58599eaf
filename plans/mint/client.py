"""HTTP client for the MINT Planning API v2.0.

One ``requests.Session`` per client, a ``(connect, read)`` timeout on every call, and every
exchange reduced to an :mod:`plans.mint.outcomes` value so the worker never handles raw HTTP.
The client secret and access tokens never leave this module in a log line, exception text, repr
or outcome: attempt rows are shown to dispatchers and logs are shipped to third parties.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit

import requests

from plans.mint.outcomes import (
    Accepted,
    HealthResult,
    Outcome,
    Problem,
    Rejected,
    Unauthorized,
    Unavailable,
)

logger = logging.getLogger("plans.mint")

USER_AGENT = "mintportal/0.1"
BODY_EXCERPT_CHARS = 500


#: A token is refreshed this share of its lifetime before it expires, but never earlier than
#: ``refresh_margin`` seconds (60 by default): a one-hour token is renewed a minute early, a
#: 30-second one 3 s early (a 5-second one 1 s early), instead of before every send.
REFRESH_FRACTION = 0.1
#: Seconds: MINT's expiration and Date header carry whole seconds.
CLOCK_RESOLUTION = 1.0


@dataclass(frozen=True)
class Token:
    """An access token and when it stops working, on *our* clock.

    ``fetched_at`` (our clock, when MINT issued it) gives the token's lifetime, from which the
    refresh margin is worked out; a token without it is treated as long-lived.
    """

    access_token: str = field(repr=False)
    expires_at: datetime
    fetched_at: datetime | None = None

    def is_valid(self, *, margin: float = 0.0, now: datetime | None = None) -> bool:
        """True while the token still has more than ``margin`` seconds to live."""
        now = now or datetime.now(UTC)
        return self.expires_at - now > timedelta(seconds=margin)

    def refresh_margin(self, cap: float) -> float:
        """Seconds before expiry to fetch a new token: the smaller of ``cap`` and 10 % of the
        token's lifetime (a fixed 60 s made every token that lives ≤ 60 s a fetch per send),
        but at least a second (half the lifetime of a shorter one): the expiration and MINT's
        Date header are whole seconds, so our idea of the expiry may be a second late."""
        if self.fetched_at is None:
            return cap
        lifetime = max(0.0, (self.expires_at - self.fetched_at).total_seconds())
        floor = min(CLOCK_RESOLUTION, lifetime / 2)
        return min(cap, max(REFRESH_FRACTION * lifetime, floor))

    def is_fresh(self, *, cap: float, now: datetime | None = None) -> bool:
        """Valid for longer than its refresh margin: use it rather than fetch a new one."""
        return self.is_valid(margin=self.refresh_margin(cap), now=now)


class TokenStore(Protocol):
    """Where tokens are shared, so N workers fetch one token rather than N.

    ``refresh`` contract: under a lock (cross-process in the DB-backed store) re-read the stored
    token; if a valid one different from ``stale`` is there now, someone else already refreshed,
    so return it without fetching; otherwise call ``fetch()``, store the result and return it.
    """

    def current(self) -> Token | None: ...

    def refresh(self, fetch: Callable[[], Token], stale: Token | None) -> Token: ...


class MemoryTokenStore:
    """In-process token store for tests, benchmarks and single-process tools."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: Token | None = None

    def current(self) -> Token | None:
        return self._token

    def refresh(self, fetch: Callable[[], Token], stale: Token | None) -> Token:
        with self._lock:
            token = self._token
            if token is not None and token != stale and token.is_valid():
                return token
            token = fetch()
            self._token = token
            return token

    def __repr__(self) -> str:
        return "MemoryTokenStore()"


class CredentialsRefused(Exception):
    """The token endpoint answered 401: the client ID/secret pair is wrong or revoked."""


class TokenUnavailable(Exception):
    """No token could be obtained for a reason worth retrying (network, 5xx, garbage)."""

    def __init__(self, error: str, http_status: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.http_status = http_status


#: What OpenSSL says when the server answered a TLS hello in plain HTTP.
_PLAIN_HTTP_SIGNS = (
    "wrong version number",
    "record layer failure",
    "http request",
    "packet length",
)
_VERSION_PATH = re.compile(r"/v\d+(\.\d+)*$")
_USERINFO = re.compile(r"//[^/@]*@")


def _tls_reason(exc: BaseException) -> str | None:
    """Why TLS failed, in a few words; None when the server does not speak TLS at all."""
    text = str(exc).lower()
    if any(sign in text for sign in _PLAIN_HTTP_SIGNS):
        return None
    if "certificate verify failed" in text:
        return "MINT's certificate is not trusted"
    if "hostname mismatch" in text or "doesn't match" in text:
        return "MINT's certificate is for another host name"
    return "handshake failed"


def api_url_problem(url: str) -> str:
    """Why ``url`` cannot be MINT's base URL, in a few words; "" when it can.

    The same judgement the HTTP library makes when it sends, made before anything is sent: the
    system check runs it on ``MINT_API_URL``, the health check on what it failed to reach.
    """
    shown = _USERINFO.sub("//…@", url)  # the text is shown on every page: no password in it
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        return f"{shown!r} is not a URL ({exc})"
    if not parts.netloc:
        if "://" in url:
            return f"{shown!r} has no host name"
        return f"{shown!r} has no scheme (https://)"
    if parts.scheme not in ("http", "https"):
        return f"{shown!r} has the scheme {parts.scheme!r}, not https or http"
    if not parts.hostname:
        return f"{shown!r} has no host name"
    try:
        requests.Request("GET", f"{url.rstrip('/')}/health/").prepare()
    except (requests.RequestException, ValueError) as exc:
        return f"{shown!r} is not a URL ({_USERINFO.sub('//…@', str(exc))})"
    return ""


def api_url_lacks_version(url: str) -> bool:
    """True when the URL's path does not end with the API version (``/api/v1.0``): every
    endpoint then answers 404."""
    return not _VERSION_PATH.search(urlsplit(url).path.rstrip("/"))


def _excerpt(text: str) -> str:
    text = text.strip()
    if len(text) > BODY_EXCERPT_CHARS:
        return text[:BODY_EXCERPT_CHARS] + "…"
    return text


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _retry_after(response: requests.Response) -> float | None:
    """Parse Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_expiration(raw: object) -> datetime:
    """Accept the spec's ``...Z`` form, plus fractional seconds and explicit offsets."""
    if not isinstance(raw, str):
        raise ValueError("expiration is not a string")
    value = datetime.fromisoformat(raw.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _validation_messages(response: requests.Response) -> list[str] | None:
    """Return MINT's messages if the body is the spec 3.2.3 list, else None."""
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, list) or not data:
        return None
    messages = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            return None
        messages.append(item["message"])
    return messages


class MintClient:
    """Talks to one MINT environment with one set of credentials."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        token_store: TokenStore,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        refresh_margin: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        #: The last access token put on the wire, so error text that echoes it can be scrubbed.
        self._token_in_use = ""
        self.token_store = token_store
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.refresh_margin = refresh_margin
        if session is None:
            session = requests.Session()
            # Take the environment's proxy and CA-bundle settings once, here. requests would look
            # them up (and read ~/.netrc) on every call, half a millisecond of CPU a send, and
            # a ~/.netrc entry for MINT's host would even replace our bearer token.
            try:
                found = session.merge_environment_settings(self.base_url, {}, None, None, None)
            except ValueError:
                found = None  # an unreadable MINT_API_URL: nothing is sent (plans.E001 says why)
            if found is not None:
                session.proxies.update(found["proxies"])
                session.verify = found["verify"]
                session.trust_env = False
        self.session = session
        self.session.headers["User-Agent"] = USER_AGENT
        #: ``POST /plan/`` prepared once (URL, session headers); each send copies it and adds
        #: its token and body. See ``_post_plan``.
        self._plan_template: requests.PreparedRequest | None = None

    def __repr__(self) -> str:
        return f"MintClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def close(self) -> None:
        """Release pooled connections (the worker calls this on shutdown)."""
        self.session.close()

    # --- helpers ---------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Remove the secret and the token from text MINT sends back (a gateway may echo them)."""
        for secret in (self._client_secret, self._token_in_use):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _describe_exception(self, exc: requests.RequestException) -> str:
        """Plain-English text for a failed exchange, without URLs' or headers' details."""
        if isinstance(exc, requests.ConnectTimeout):
            return (
                f"Could not connect to MINT within {_seconds(self.connect_timeout)} "
                "(connect timeout)"
            )
        if isinstance(exc, requests.ReadTimeout):
            return f"MINT did not answer within {_seconds(self.read_timeout)} (read timeout)"
        if isinstance(exc, requests.exceptions.SSLError):
            reason = _tls_reason(exc)
            if reason is None:
                return (
                    "Could not connect to MINT: TLS failed, as the server at MINT_API_URL does "
                    "not speak TLS (is it http://?)"
                )
            return f"Could not connect to MINT: TLS failed ({reason})"
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return "Could not send to MINT: MINT_API_URL cannot be read"
        if isinstance(exc, requests.exceptions.InvalidSchema):
            return "Could not send to MINT: MINT_API_URL has no http:// or https:// scheme"
        if isinstance(exc, requests.ConnectionError):
            return f"Could not connect to MINT: {self._connection_reason(exc)}"
        return f"Request to MINT failed: {type(exc).__name__}"

    @staticmethod
    def _connection_reason(exc: BaseException) -> str:
        seen: set[int] = set()
        stack: list[BaseException | None] = [exc]
        text = ""
        while stack:
            current = stack.pop()
            if current is None or id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, ConnectionRefusedError):
                return "connection refused"
            if isinstance(current, ConnectionResetError):
                return "connection reset"
            text += f" {current}"
            stack.extend([current.__cause__, current.__context__])
            stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
            reason = getattr(current, "reason", None)
            if isinstance(reason, BaseException):
                stack.append(reason)
        lowered = text.lower()
        if "connection refused" in lowered:
            return "connection refused"
        if "name or service not known" in lowered or "nodename nor servname" in lowered:
            return "host name could not be resolved"
        if "failed to resolve" in lowered or "getaddrinfo" in lowered:
            return "host name could not be resolved"
        if "remotedisconnected" in lowered or "without response" in lowered:
            return "MINT closed the connection without answering"
        if "connection reset" in lowered:
            return "connection reset"
        return "network error"

    def _describe_status(self, response: requests.Response) -> str:
        """Text for a status we cannot act on, including a short excerpt of what came back."""
        status = f"{response.status_code} {response.reason or ''}".strip()
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        body = _excerpt(self._scrub(response.text or ""))
        if not body:
            return f"MINT answered {status} with an empty body"
        if content_type and "json" not in content_type:
            return (
                f"MINT answered {response.status_code} with a non-JSON body ({content_type}): "
                f"{body}"
            )
        return f"MINT answered {status}: {body}"

    def _log(self, method: str, path: str, status: int | str, started: float) -> None:
        logger.debug("MINT %s %s -> %s in %d ms", method, path, status, _elapsed_ms(started))

    # --- token -------------------------------------------------------------------------------

    def _fetch_token(self) -> Token:
        """Ask MINT for a new access token; raise rather than return an outcome."""
        started = time.monotonic()
        try:
            # Spec 3.2.2 Security: "POST /auth/token" with body {"clientId", "clientSecret"};
            # "200 OK" {"accessToken", "expiration"}; "401 Unauthorized <empty response>".
            response = self.session.post(
                f"{self.base_url}/auth/token",
                json={"clientId": self.client_id, "clientSecret": self._client_secret},
                timeout=self._timeout,
                allow_redirects=False,  # never re-post the credentials to another address
            )
        except requests.RequestException as exc:
            self._log("POST", "/auth/token", type(exc).__name__, started)
            raise TokenUnavailable(
                f"Token request failed: {self._describe_exception(exc)}"
            ) from None
        self._log("POST", "/auth/token", response.status_code, started)

        if response.status_code == 401:
            raise CredentialsRefused("MINT refused the client ID and secret (401 on /auth/token)")
        if response.status_code != 200:
            raise TokenUnavailable(
                f"Token request failed: {self._describe_status(response)}",
                http_status=response.status_code,
            )
        try:
            data = response.json()
            access_token = data["accessToken"]
            expiration = _parse_expiration(data["expiration"])
            if not isinstance(access_token, str) or not access_token:
                raise ValueError("empty accessToken")
        except (ValueError, KeyError, TypeError):
            # The body may hold a token, so it is deliberately not quoted.
            raise TokenUnavailable(
                "Token request failed: MINT answered 200 without a usable accessToken/expiration",
                http_status=200,
            ) from None
        return Token(
            access_token=access_token,
            expires_at=self._local_expiry(response, expiration),
            fetched_at=datetime.now(UTC),
        )

    @staticmethod
    def _local_expiry(response: requests.Response, expiration: datetime) -> datetime:
        """Translate MINT's expiration onto our clock using its Date header, if it sent one.

        A skewed local clock would otherwise make every token look expired (a fetch per send)
        or valid for too long (a 401 per send).
        """
        now = datetime.now(UTC)
        try:
            server_now = parsedate_to_datetime(response.headers["Date"])
        except (KeyError, TypeError, ValueError):
            return expiration
        if server_now.tzinfo is None:
            server_now = server_now.replace(tzinfo=UTC)
        return now + (expiration - server_now)

    def _token(self) -> Token:
        """A token outside its refresh margin (see ``Token.refresh_margin``), else a fresh one
        via the store."""
        token = self.token_store.current()
        if token is not None and token.is_fresh(cap=self.refresh_margin):
            return token
        return self.token_store.refresh(self._fetch_token, token)

    # --- endpoints ---------------------------------------------------------------------------

    def health(self) -> HealthResult:
        """Probe MINT's health endpoint for the operator dashboard and the worker's gate."""
        started = time.monotonic()
        token = self.token_store.current()
        response = self._get_health(token if token is not None and token.is_valid() else None)
        fetched = False
        if isinstance(response, requests.Response) and response.status_code == 401:
            # Spec 3.2.2: every endpoint wants a token. An installation that has not sent a
            # plan yet holds none, so fetch one and ask again.
            stale = token
            try:
                token = self._token()
                fetched = token is not stale
                response = self._get_health(token)
            except CredentialsRefused:
                return HealthResult(
                    up=False,
                    http_status=401,
                    latency_ms=_elapsed_ms(started),
                    error="MINT refused the portal's credentials (401)",
                    problem_kind=Problem.CREDENTIALS,
                    problem=Problem.credentials,
                )
            except TokenUnavailable as exc:
                return HealthResult(
                    up=False, http_status=401, latency_ms=_elapsed_ms(started), error=exc.error
                )
        if not isinstance(response, requests.Response):
            self._log("GET", "/health/", type(response).__name__, started)
            kind, problem = self._problem_of_exception(response)
            return HealthResult(
                up=False,
                http_status=None,
                latency_ms=_elapsed_ms(started),
                error=self._describe_exception(response),
                problem_kind=kind,
                problem=problem,
            )
        self._log("GET", "/health/", response.status_code, started)
        status = response.status_code
        kind, problem = "", ""
        if status == 404:
            kind, problem = Problem.NOT_FOUND, Problem.not_found.format(path="/health/")
        elif 300 <= status < 400:
            kind = Problem.REDIRECT
            problem = Problem.redirect.format(status=status, path="/health/")
        return HealthResult(
            up=status == 200,
            http_status=status,
            latency_ms=_elapsed_ms(started),
            error="" if status == 200 else self._describe_status(response),
            problem_kind=kind,
            problem=problem,
            credentials_checked=fetched and status != 401,
        )

    def credentials_refused(self) -> bool | None:
        """Ask MINT for a new token now (the sends then use it): True when MINT refuses the
        credentials, False when it issues one, None when it could not be asked."""
        try:
            self.token_store.refresh(self._fetch_token, self.token_store.current())
        except CredentialsRefused:
            return True
        except TokenUnavailable:
            return None
        return False

    def _problem_of_exception(self, exc: requests.RequestException) -> tuple[str, str]:
        """The configuration fault behind a failed exchange, if it is one: ("", "") if not."""
        if isinstance(exc, requests.exceptions.SSLError):
            reason = _tls_reason(exc)
            if reason is None:
                return Problem.TLS, Problem.no_tls
            return Problem.TLS, Problem.tls.format(reason=reason)
        if isinstance(
            exc,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema,
        ):
            reason = api_url_problem(self.base_url) or str(exc)
            return Problem.URL, Problem.url.format(reason=reason)
        return "", ""

    def _get_health(self, token: Token | None) -> requests.Response | requests.RequestException:
        headers = {"Authorization": f"Bearer {token.access_token}"} if token else {}
        if token:
            self._token_in_use = token.access_token
        try:
            # Spec 3.2.4 Health: "GET /health/" -> "200 OK" or "503 Service Unavailable".
            return self.session.get(
                f"{self.base_url}/health/",
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return exc

    def send_plan(self, body: str) -> Outcome:
        """Deliver one encoded plan body and say what happened; never raises for HTTP trouble."""
        started = time.monotonic()
        token = self._token_or_outcome(self._token, body, started)
        if isinstance(token, Outcome):
            return token

        result = self._post_plan(token, body, started)
        if not (isinstance(result, requests.Response) and result.status_code == 401):
            return self._outcome(result, body, started)

        # A 401 with a token we believed valid: MINT revoked or expired it early. Refresh once
        # (the store hands back a newer token if another worker already refreshed) and resend.
        stale = token
        token = self._token_or_outcome(
            lambda: self.token_store.refresh(self._fetch_token, stale), body, started
        )
        if isinstance(token, Outcome):
            return token
        return self._outcome(self._post_plan(token, body, started), body, started)

    @staticmethod
    def _token_or_outcome(get: Callable[[], Token], body: str, started: float) -> Token | Outcome:
        """A token from ``get``, or the outcome that its failure means for the plan."""
        try:
            return get()
        except CredentialsRefused:
            return Unauthorized(http_status=401, duration_ms=_elapsed_ms(started), body_sent=body)
        except TokenUnavailable as exc:
            return Unavailable(
                http_status=exc.http_status,
                duration_ms=_elapsed_ms(started),
                body_sent=body,
                error=exc.error,
            )

    def _post_plan(
        self, token: Token, body: str, started: float
    ) -> requests.Response | Unavailable:
        self._token_in_use = token.access_token
        try:
            # Spec 4.1 Plan: "POST /plan/", header "Authorization: Bearer <YOUR ACCESS TOKEN>",
            # JSON body per Table 1; "200 OK", "400 Bad Request" (3.2.3), "401 Unauthorized".
            request = self._plan_request(token, body)
            # Straight to the connection pool, with the session's settings fixed at start-up:
            # ``Session.post`` would merge the same settings, cookies and hooks again for every
            # plan (about a third of a millisecond of CPU a send, as much as the worker's own
            # bookkeeping). No redirect is followed: it would turn the POST into a GET whose
            # 200 we would take for an acceptance; MINT's endpoints do not move, so a 3xx is an
            # error to show.
            response = self.session.get_adapter(request.url).send(
                request,
                timeout=self._timeout,
                verify=self.session.verify,
                cert=self.session.cert,
                proxies=self.session.proxies,
            )
            response.content  # noqa: B018 - read the answer whole, freeing the kept-alive connection
        except requests.RequestException as exc:
            self._log("POST", "/plan/", type(exc).__name__, started)
            return Unavailable(
                http_status=None,
                duration_ms=_elapsed_ms(started),
                body_sent=body,
                error=self._describe_exception(exc),
            )
        self._log("POST", "/plan/", response.status_code, started)
        return response

    def _plan_request(self, token: Token, body: str) -> requests.PreparedRequest:
        """``POST {MINT_API_URL}/plan/`` with this token and body, as ``Session.post`` would
        prepare it (the session's headers: User-Agent, Accept, keep-alive)."""
        if self._plan_template is None:
            self._plan_template = self.session.prepare_request(
                requests.Request(
                    "POST",
                    f"{self.base_url}/plan/",
                    headers={"Content-Type": "application/json"},
                )
            )
        request = self._plan_template.copy()
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        request.prepare_body(data=body.encode("utf-8"), files=None)
        return request

    def _outcome(
        self, result: requests.Response | Unavailable, body: str, started: float
    ) -> Outcome:
        """Map a plan response onto the outcome hierarchy (see outcomes.py for the rules)."""
        if isinstance(result, Unavailable):
            return result
        status = result.status_code
        duration_ms = _elapsed_ms(started)
        if 300 <= status < 400:
            return Unavailable(
                http_status=status,
                duration_ms=duration_ms,
                body_sent=body,
                error=(
                    f"MINT answered {status} and redirects elsewhere; the plan was not sent on. "
                    f"Check MINT_API_URL."
                ),
            )
        if 200 <= status < 300:
            return Accepted(http_status=status, duration_ms=duration_ms, body_sent=body)
        if status == 401:
            return Unauthorized(http_status=status, duration_ms=duration_ms, body_sent=body)
        if status == 400:
            messages = _validation_messages(result)
            if messages is not None:
                return Rejected(
                    http_status=status,
                    duration_ms=duration_ms,
                    body_sent=body,
                    messages=[self._scrub(m) for m in messages],
                )
            error = (
                "MINT answered 400 without the validation list of spec 3.2.3; "
                + self._describe_status(result)
            )
        else:
            error = self._describe_status(result)
        return Unavailable(
            http_status=status,
            duration_ms=duration_ms,
            body_sent=body,
            error=error,
            retry_after=_retry_after(result) if status in (429, 503) else None,
        )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
