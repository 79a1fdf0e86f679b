"""Serving the broker under gunicorn (several worker processes, any of which can serve any step)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from config import load_settings

log = logging.getLogger(__name__)


class BrokerServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application that builds the Flask app in each worker (no state shared by fork)."""

    def __init__(self, config_path: Path, options: dict[str, Any]) -> None:
        self._config_path = config_path
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from broker.web.app import create_app

        app = create_app(load_settings(self._config_path))
        # Audit records are sealed into the chain by a thread of this worker, not by the
        # request whose append finds a seal due (that request would wait for the whole batch).
        app.extensions["supercloud"].audit.seal_in_background()
        # Parse the signing keys now, as the worker starts, rather than in its first token
        # request (an RSA key costs tens of milliseconds to load). A failure here is left to
        # the first request that needs a key, which reports it as before.
        try:
            app.extensions["supercloud"].keyring.jwks()
        except Exception as exc:  # noqa: BLE001 - reported by the request that needs the key
            log.warning("signing keys not loaded at worker start (%s): they will be tried again on first use", type(exc).__name__)
        return app


def serve(config_path: Path, *, host: str, port: int, workers: int, threads: int) -> None:
    """Run the broker until interrupted."""
    BrokerServer(
        config_path,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "accesslog": "-",
            "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
            "timeout": 30,
            # Longer than clients' idle reuse of pooled connections (node keeps them 4 s), so a
            # request never races the server closing the connection under it.
            "keepalive": 65,
            "graceful_timeout": 5,
        },
    ).run()
