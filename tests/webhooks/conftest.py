import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture(autouse=True)
def _fresh_subscription_cache():
    """The active subscriptions are cached per process: a rolled-back test's rows must not linger."""
    from webhooks.events import subscriptions_cache_clear

    subscriptions_cache_clear()
    yield
    subscriptions_cache_clear()


class Receiver:
    """A partner's endpoint: records every request; answers the queued statuses, then 200."""

    def __init__(self):
        self.requests = []
        self.statuses = []
        self.lock = threading.Lock()

    def answer(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    @property
    def bodies(self):
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.answer()
            with state.lock:
                state.requests.append({"headers": dict(self.headers.items()), "raw_headers": self.headers, "body": body, "status": status, "path": self.path})
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"boom")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ballast"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def subscribe(db):
    from webhooks import services

    def make(url="https://partner.example/hooks", event_types=("*",), active=True):
        return services.subscription_create(url=url, event_types=list(event_types), active=active)

    return make
