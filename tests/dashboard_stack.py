"""The dashboard against real services: scraper, trainer, generator and publisher as gRPC
servers on 127.0.0.1 in this process (the generator on its in-process backend, no
TorchServe; the publisher's cycles calling the other three), and the dashboard served by
uvicorn on a free loopback port."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from services.generator.server import register as register_generator
from services.publisher.server import register as register_publisher
from services.scraper.server import register as register_scraper
from services.trainer.server import register as register_trainer
from socialgan.cycles import CycleRunner
from socialgan.dashboard.app import create_app
from socialgan.dashboard.auth import Credentials
from socialgan.dashboard.services import Addresses, Services
from socialgan.rpc.client import free_port
from socialgan.rpc.server import start_server
from socialgan.serving.backends import InProcessBackend
from socialgan.storage import ObjectStore
from socialgan.supervisor import Endpoints
from tests.conftest import TEST_TOKEN

PASSWORD = "dashboard-test-password"
TINY = {"ngf": "8", "ndf": "8", "batch_size": "16"}


def csrf_of(page: str) -> str:
    """The CSRF token in a page's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


@dataclass
class Stack:
    url: str
    services: Services
    store: ObjectStore


@contextmanager
def grpc_services(store: ObjectStore) -> Iterator[Addresses]:
    backend = InProcessBackend(store)
    servers = [
        start_server("scraper", lambda s: register_scraper(s, store), port=0, token=TEST_TOKEN,
                     host="127.0.0.1"),
        start_server("trainer", lambda s: register_trainer(s, store), port=0, token=TEST_TOKEN,
                     host="127.0.0.1"),
        start_server("generator", lambda s: register_generator(s, store, backend), port=0,
                     token=TEST_TOKEN, host="127.0.0.1"),
    ]
    # The publisher last: its cycles call the three above.
    scraper, trainer, generator = (f"127.0.0.1:{s.port}" for s in servers)
    cycles = CycleRunner(store, Endpoints(scraper, trainer, generator, "", TEST_TOKEN))
    servers.append(start_server("publisher", lambda s: register_publisher(s, store, cycles),
                                port=0, token=TEST_TOKEN, host="127.0.0.1"))
    try:
        yield Addresses(scraper, trainer, generator, f"127.0.0.1:{servers[-1].port}")
    finally:
        for server in servers:
            server.stop(grace=0)
        cycles.shutdown()
        backend.close()


@contextmanager
def served(app) -> Iterator[str]:
    """app served by uvicorn in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True, name="dashboard-uvicorn")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start the dashboard")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def dashboard_stack(store: ObjectStore) -> Iterator[Stack]:
    with grpc_services(store) as addresses:
        services = Services(addresses, TEST_TOKEN)
        app = create_app(services, store, Credentials(api_token=TEST_TOKEN, password=PASSWORD))
        with served(app) as url:
            yield Stack(url, services, store)
        app.state.dashboard.launcher.close()
