"""Who is acting right now: a staff user in the admin, an API token's user, or the
system (a Celery task, a management command).

One value per request or task, in a ContextVar: `AuditContextMiddleware` sets it for
every request (the session user, resolved only when an entry is written), the API's
token authentication replaces it once DRF has authenticated the token (after the
middleware ran, so the middleware alone would see an anonymous user), and a Celery
task gets its own in `receivers.py`.
"""

import contextlib
import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace

# How the change came in (additional_data["via"] of every entry).
VIA_ADMIN = "admin"
VIA_API_TOKEN = "api-token"
VIA_API_SESSION = "api-session"
VIA_WEB = "web"
VIA_TASK = "task"
VIA_COMMAND = "command"
VIA_PROCESS = "process"
TOKEN_PREFIX_LENGTH = 8  # never the whole key: it is a password


@dataclass(frozen=True)
class AuditContext:
    via: str
    actor: object = None  # a user, or a callable returning one (the request's lazy user)
    token: str = ""  # the API token's first TOKEN_PREFIX_LENGTH characters
    system: str = ""  # the task or command name, when no person is behind the change
    remote_addr: str | None = None

    def user(self):
        """The acting user if there is an authenticated one, else None."""
        actor = self.actor() if callable(self.actor) else self.actor
        return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


_current: ContextVar[AuditContext | None] = ContextVar("ballast_audit_context", default=None)


def _process_context() -> AuditContext:
    """Outside any request or task: a management command (`manage.py <name>`) or
    another process (the shell of a script, the test runner)."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if program == "manage.py" and len(sys.argv) > 1:
        return AuditContext(via=VIA_COMMAND, system=f"command {sys.argv[1]}")
    return AuditContext(via=VIA_PROCESS, system=f"process {program}")


def current() -> AuditContext:
    return _current.get() or _process_context()


@contextlib.contextmanager
def audit_context(**fields):
    """Act as `fields` (AuditContext's) inside the block, e.g.
    `with audit_context(via="command", system="command load_demo"):`."""
    token = _current.set(AuditContext(**fields))
    try:
        yield
    finally:
        _current.reset(token)


def push(context: AuditContext):
    """Set the context; returns the token for `pop` (for hooks that cannot use `with`)."""
    return _current.set(context)


def pop(token) -> None:
    _current.reset(token)


def act_as_api_token(*, user, key: str) -> None:
    """The request is authenticated by an API token: its user acts, and entries say so
    with the key's first characters. Called by the API's token authentication; the
    request's middleware restores the previous context when the request ends."""
    base = _current.get() or AuditContext(via=VIA_API_TOKEN)
    _current.set(replace(base, via=VIA_API_TOKEN, actor=user, token=key[:TOKEN_PREFIX_LENGTH], system=""))


def request_context(request, *, admin_prefix: str, api_prefix: str) -> AuditContext:
    path = request.path
    via = VIA_ADMIN if path.startswith(admin_prefix) else VIA_API_SESSION if path.startswith(api_prefix) else VIA_WEB
    user: Callable = lambda: getattr(request, "user", None)  # noqa: E731  (resolved when an entry is written)
    return AuditContext(via=via, actor=user, remote_addr=request.META.get("REMOTE_ADDR") or None)
