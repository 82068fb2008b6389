"""Running a flow from the CLI: the database URL handed over by environment, failures as one line.

The URL goes to the flow through ``$CAREFLOW_DATABASE_URL`` rather than as a flow parameter, because
Prefect stores flow parameters in its own database and shows them in its UI, and a production URL
carries a password.  Failures become careflow errors so the CLI prints one sentence, not Prefect's
or SQLAlchemy's traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from careflow.engine.retry import is_transient
from careflow.errors import CareflowError, DatabaseUnavailable, OrchestratorUnavailable, PortInUse
from careflow.store.database import ENV_URL, resolve_url


def use_database(db_url: str | None) -> str:
    """Resolve the store URL and export it for every flow and task run of this process."""
    url = resolve_url(db_url)
    os.environ[ENV_URL] = url
    return url


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def run(flow: Callable[..., Any], **parameters: Any) -> Any:
    """Call ``flow`` (a Prefect flow) and translate what can go wrong into a careflow error."""
    try:
        return flow(**parameters)
    except CareflowError:
        raise
    except Exception as exc:
        if is_transient(exc):
            url = os.environ.get(ENV_URL, "")
            raise DatabaseUnavailable(
                f"the database {_redacted(url) if url else ''} is unavailable even after retries "
                f"({type(exc).__name__}); check it is running and reachable"
            ) from None
        text = str(exc)
        name = type(exc).__name__
        if "ephemeral Prefect API server" in text or name in ("ConnectError", "ConnectTimeout", "PrefectHTTPStatusError"):
            where = os.environ.get("PREFECT_API_URL") or "the temporary local Prefect server"
            raise OrchestratorUnavailable(f"cannot reach the Prefect API at {where}: {text.splitlines()[0] if text else name}") from None
        raise


def check_port_free(host: str, port: int) -> None:
    """Fail before the long work if the API could not listen at the end of it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another with --port") from None


def stop_temporary_prefect_server() -> None:
    """Stop the temporary local Prefect server, if this process started one (frees its port early)."""
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()


INTERRUPTED = "careflow: interrupted; run the same command again to finish (nothing is duplicated)\n"


@contextmanager
def stop_on_interrupt() -> Iterator[None]:
    """Ctrl-C (or SIGTERM) during engine work ends the process at once, without a traceback.

    Waiting for a clean stop would mean waiting for every running partition (minutes), because
    Prefect's task runner joins its threads.  Stopping hard is safe: each unit of work is one
    database transaction (an unfinished one rolls back), and every step is idempotent, so running
    the command again completes the work.  The temporary Prefect server, if this process started
    one, is stopped first so that it does not outlive us.
    """

    def _stop(signum: int, frame: Any) -> None:
        try:
            sys.stderr.write(INTERRUPTED)
            sys.stderr.flush()
            from prefect.server.api.server import SubprocessASGIServer

            for server in list(SubprocessASGIServer._instances.values()):
                if server.server_process is not None:
                    server.server_process.terminate()
        finally:
            os._exit(130)

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
