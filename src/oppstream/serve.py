"""`oppstream serve NAME`: one of the services, as deployed (`chassis.serving`)."""

import importlib

from chassis import serving


def serve(service: str, host: str, port: int, workers: int | None = None) -> int:
    # Only the named service is imported: each pulls in its own store and libraries.
    main = importlib.import_module(f"{service}.main")
    return serving.serve(main.SERVICE, host, port, workers)
