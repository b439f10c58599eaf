"""``python manage.py mint_sandbox``: run the built-in MINT sandbox until SIGINT/SIGTERM.

Thin wrapper: the server lives in ``plans.mint.sandbox``; this command only supplies the demo
credentials from settings and lets the sandbox reject locations the portal does not know.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connections

from plans.mint.sandbox import MintSandbox
from plans.models import Location

#: A location found in the portal's database is taken as known for this long (seconds), so a
#: busy sandbox does not open a database connection for every plan; an unknown one is asked
#: about every time (it may be added in the admin any moment).
KNOWN_FOR = 30.0
_known: dict[str, float] = {}


def known_location(location_id: str) -> bool:
    """Ask the portal's DB; runs on a sandbox server thread, which owns its own connection."""
    if _known.get(location_id, 0.0) > time.monotonic():
        return True
    close_old_connections()
    try:
        found = Location.objects.filter(mint_location_id=location_id).exists()
    finally:
        # Server threads end with their connection; close theirs rather than leak it.
        connections.close_all()
    if found:
        _known[location_id] = time.monotonic() + KNOWN_FOR
    return found


class Command(BaseCommand):
    help = "Run the built-in MINT Planning API v2.0 sandbox (for training and development)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.MINT_SANDBOX_PORT)
        parser.add_argument("--token-ttl", type=int, default=3600, help="token lifetime, seconds")

    def handle(self, *args: Any, host: str, port: int, token_ttl: int, **options: Any) -> None:
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            stop.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        sandbox = MintSandbox(
            host,
            port,
            client_id=settings.MINT_SANDBOX_CLIENT_ID,
            client_secret=settings.MINT_SANDBOX_CLIENT_SECRET,
            token_ttl=token_ttl,
            known_location=known_location,
        )
        sandbox.start()
        try:
            self.stdout.write(f"MINT sandbox listening on {sandbox.url}")
            self.stdout.write(f"  demo client ID:     {settings.MINT_SANDBOX_CLIENT_ID}")
            self.stdout.write(f"  demo client secret: {settings.MINT_SANDBOX_CLIENT_SECRET}")
            self.stdout.write(
                f"  control: http://{host}:{sandbox.port}/_sandbox/behaviour | /log | /reset"
            )
            self.stdout.write("Press Ctrl+C to stop.")
            while not stop.wait(0.5):
                pass
        finally:
            sandbox.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("MINT sandbox stopped.")
