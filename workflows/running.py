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
import time
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


class PrefectServerStart:
    """The temporary local Prefect server, started on a thread so its 10-70 s start overlaps other work.

    Prefect would start it silently at the first flow run; starting it early and saying so (and
    how long it has been starting) means no step of ``careflow demo`` is silent for more than a
    few seconds.  If the start fails, the first flow run tries again and reports the error.
    """

    HEARTBEAT_SECONDS = 5.0

    def __init__(self, progress: Callable[[str], None], what: str = "demo") -> None:
        import threading

        self._progress = progress
        self._what = what
        self._thread: Any = None
        self._started = 0.0
        if os.environ.get("PREFECT_API_URL"):
            return  # a real Prefect server: nothing to start
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        if server.running:
            return
        progress(f"{what}: starting a temporary local Prefect server for the flow runs "
                 "(its first start sets up its database: up to a minute)")

        def start() -> None:
            try:
                server.start()
            except Exception:  # noqa: BLE001 - the first flow run retries and reports it
                pass

        self._started = time.monotonic()
        self._thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Block until the server answers (or its start failed), with a line every few seconds."""
        if self._thread is None:
            return
        while self._thread.is_alive():
            self._thread.join(self.HEARTBEAT_SECONDS)
            if self._thread.is_alive():
                self._progress(f"{self._what}: waiting for the temporary Prefect server to start "
                               f"({time.monotonic() - self._started:.0f}s)")
        self._progress(f"{self._what}: Prefect server ready ({time.monotonic() - self._started:.0f}s)")
        self._thread = None


def start_temporary_prefect_server(progress: Callable[[str], None], what: str = "demo") -> PrefectServerStart:
    """Start the temporary Prefect server in the background (no-op with ``PREFECT_API_URL``)."""
    return PrefectServerStart(progress, what)


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


STOPPING = "careflow: stopping; Ctrl-C again to stop at once\n"
WORKER_GRACE_SECONDS = 20.0


def _child_pids() -> list[int]:
    """This process's direct children (Linux /proc; elsewhere none are known)."""
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(me):
            found.append(int(entry))
    return found


def _end_now(code: int = 130) -> None:
    """Terminate the children (flow-run subprocesses, a temporary Prefect server) and leave at once."""
    try:
        for pid in _child_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and _child_pids():
            time.sleep(0.1)
        for pid in _child_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        sys.stderr.flush()
    finally:
        os._exit(code)


@contextmanager
def stop_within(grace: float = WORKER_GRACE_SECONDS) -> Iterator[None]:
    """Ctrl-C asks for a clean stop, and the process ends within ``grace`` seconds whatever happens.

    ``careflow worker`` stops through Prefect's runner, which cancels its flow runs, waits for their
    subprocesses and flushes its event and log clients; on a busy machine that took longer than a
    minute (and was killed).  The first Ctrl-C starts that clean stop and a timer; when the timer
    runs out, or at a second Ctrl-C, the children are terminated and the process exits (130).  Safe
    for the same reason as ``stop_on_interrupt``: every flow is idempotent and reruns finish the work.
    """
    import threading

    armed = threading.Event()

    def _watchdog() -> None:
        time.sleep(grace)
        sys.stderr.write(f"careflow: did not stop within {grace:.0f}s; ending its flow runs now\n")
        _end_now()

    def _on_interrupt(signum: int, frame: Any) -> None:
        if armed.is_set():
            _end_now()
        armed.set()
        sys.stderr.write(STOPPING)
        sys.stderr.flush()
        threading.Thread(target=_watchdog, name="careflow-stop-watchdog", daemon=True).start()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, _on_interrupt)
    try:
        yield
    finally:
        if not armed.is_set():
            signal.signal(signal.SIGINT, previous)
        # when armed, the handler stays: a second Ctrl-C during Prefect's shutdown still ends at once
