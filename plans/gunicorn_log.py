"""gunicorn's access log without calendar feed tokens: ``--logger-class plans.gunicorn_log.Logger``.

The access log writes each request line, and a feed URL carries its token in the path
(``/feeds/<token>/…``); every text the log format can name is masked with ``plans.logs.redact``.
"""

from gunicorn import glogging

from plans.logs import redact


class Logger(glogging.Logger):
    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()
        }
