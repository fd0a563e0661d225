"""`python -m server` / `rota server`: start the rota server."""

from __future__ import annotations

import logging
import sys

import uvicorn

from .app import create_app
from .settings import Settings, SettingsError


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"rota: bad setting: {exc}")
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        # Long-poll claims and SSE tails are open for up to a minute; give
        # them a few seconds to finish on shutdown rather than hanging.
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
