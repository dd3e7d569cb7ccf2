"""The dashboard's HTTP server: `python -m services.dashboard.server`.

Thin by design, like the gRPC services: it reads the environment, builds the FastAPI app
of socialgan.dashboard and serves it with uvicorn on LISTEN_HOST:PORT (default 8088).
The app calls the scraper, trainer, generator and publisher (its cycles) at their
*_SERVICE_ADDR with the API token, and reads pictures and reports from the configured storage.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from socialgan import log, settings
from socialgan.dashboard.app import create_app
from socialgan.dashboard.auth import Credentials
from socialgan.dashboard.services import Addresses, Services
from socialgan.errors import SocialGanError
from socialgan.rpc.server import check_api_token
from socialgan.storage import open_store

DEFAULT_PORT = 8088


def build_app():
    token = check_api_token(settings.require("SOCIALGAN_API_TOKEN"))
    services = Services(Addresses(scraper=settings.require("SCRAPER_SERVICE_ADDR"),
                                  trainer=settings.require("TRAINER_SERVICE_ADDR"),
                                  generator=settings.require("GENERATOR_SERVICE_ADDR"),
                                  publisher=settings.require("PUBLISHER_SERVICE_ADDR")), token)
    hours = float(settings.get_int("DASHBOARD_SESSION_HOURS"))
    return create_app(services, open_store(),
                      Credentials(api_token=token,
                                  password=settings.get("DASHBOARD_PASSWORD") or ""),
                      secret_key=settings.get("DASHBOARD_SECRET_KEY") or "",
                      session_hours=hours)


def main() -> None:
    log.configure("dashboard")
    try:
        app = build_app()
    except (settings.ConfigError, SocialGanError) as exc:
        logging.getLogger("socialgan.dashboard").error("cannot start: %s", exc)
        sys.exit(2)
    host = settings.get("LISTEN_HOST") or "127.0.0.1"
    port = settings.get_int("PORT", DEFAULT_PORT)
    logging.getLogger("socialgan.dashboard").info("dashboard on http://%s:%d/", host, port)
    # log_config=None: uvicorn's records go through the JSON handler configured above.
    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=False,
                server_header=False)


if __name__ == "__main__":
    main()
