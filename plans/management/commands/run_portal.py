"""``python manage.py run_portal``: the whole portal in one terminal, for ``make run``.

Starts the built-in MINT sandbox (only when ``MINT_API_URL`` is not configured), one delivery
worker and the web server, prefixes nothing and hides nothing, and stops all of them together on
Ctrl-C or when any one of them exits. Production runs the three with systemd instead
(docs/deploy.md).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


class Command(BaseCommand):
    help = "Run the portal, a delivery worker and (without MINT_API_URL) the MINT sandbox."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, **options) -> None:
        env = os.environ.copy()
        commands: list[tuple[str, list[str]]] = []
        if not env.get("MINT_API_URL"):
            # settings.py already points an unconfigured DEBUG portal at this sandbox.
            env["MINT_API_URL"] = settings.MINT_API_URL
            port = str(settings.MINT_SANDBOX_PORT)
            commands.append(("sandbox", [sys.executable, MANAGE, "mint_sandbox", "--port", port]))
        worker = [sys.executable, MANAGE, "mint_worker", "--name", "local-worker"]
        commands.append(("worker", worker))
        address = f"{options['host']}:{options['port']}"
        if settings.DEBUG:
            web = [sys.executable, MANAGE, "runserver", "--noreload", address]
        else:
            web = [sys.executable, "-m", "gunicorn", "mintportal.wsgi", "--bind", address]
        commands.append(("web", web))

        children: dict[str, subprocess.Popen] = {}
        stop = {"now": False}

        def request_stop(signum, frame) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            for name, argv in commands:
                children[name] = subprocess.Popen(argv, env=env)  # noqa: S603 - our own commands
                if name == "sandbox":
                    time.sleep(1.0)
            self.stdout.write(
                self.style.SUCCESS(f"MINT Portal is up: http://{address}/  (Ctrl-C stops it)")
            )
            self.stdout.write(f"MINT API: {env['MINT_API_URL']}")
            while not stop["now"]:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with code {child.returncode}; stopping")
                        stop["now"] = True
                time.sleep(0.5)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children.values():
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
