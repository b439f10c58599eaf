"""One JSON object per log line, so operators can search deliveries by plan, message or outcome.

Fields passed with ``extra={...}`` become top-level keys. As a last line of defence the MINT
client secret is masked wherever it might appear; the code never logs it or the access token.

Calendar feed URLs carry their token in the path (``/feeds/<token>/…``), and Django logs paths:
``django.request`` says "Not Found: <path>" for every 404, runserver and gunicorn log each
request line. ``redact`` masks such tokens (and the MINT secret); ``RedactFilter`` applies it to
the message of the loggers that write paths, before any handler sees the record, and both
formatters apply it to the finished line, extras included. ``plans.gunicorn_log`` does the same
for gunicorn's access log.
"""

import json
import logging
import re
from datetime import UTC, datetime

from django.conf import settings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
#: A calendar feed token in a path: what follows ``/feeds/`` up to the next ``/``.
_FEED_TOKEN = re.compile(r"(/feeds/)[^/\s\"'?#]+")


def redact(text: str) -> str:
    """``text`` without calendar feed tokens or the MINT client secret."""
    text = _FEED_TOKEN.sub(r"\1***", text)
    secret = getattr(settings, "MINT_CLIENT_SECRET", "")
    if secret and secret in text:
        text = text.replace(secret, "***")
    return text


class RedactFilter(logging.Filter):
    """Masks feed tokens in a record's message, for every handler after it (on a logger, it
    runs before the record reaches any handler, the test suite's included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class PlainFormatter(logging.Formatter):
    """One line of text (the development format), with ``redact`` applied."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False))
