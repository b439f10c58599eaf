"""One JSON object per log line, so operators can search deliveries by plan, message or outcome.

Fields passed with ``extra={...}`` become top-level keys. As a last line of defence the MINT
client secret is masked wherever it might appear; the code never logs it or the access token.
"""

import json
import logging
from datetime import UTC, datetime

from django.conf import settings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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
        line = json.dumps(entry, ensure_ascii=False)
        secret = getattr(settings, "MINT_CLIENT_SECRET", "")
        if secret and secret in line:
            line = line.replace(secret, "***")
        return line
