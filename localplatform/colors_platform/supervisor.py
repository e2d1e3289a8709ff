"""Supervision of the platform's processes: a Component is started unless this checkout already runs it (its
ports checked free, its health awaited, a failure shown with the last lines of its log), and stopped by its pid
file, which carries the process start time so that a reused pid is never signalled."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PlatformError, log


def _https_get(url: str, pki: Path | None) -> tuple[int, str]:
    """GET with the administrator's client certificate (`pki`), or unverified (None): the controller-manager and the
    scheduler serve self-signed health endpoints on loopback, nothing to verify."""
    ctx = (ssl.create_default_context(cafile=str(pki / "ca.crt")) if pki
           else ssl._create_unverified_context())  # noqa: S323 # nosec B323 # nosemgrep: tls-verification-disabled
    if pki:
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return _get(url, ctx)


def _unix_ping(path: str) -> int:
    """HTTP status of GET /_ping on a unix socket (the Docker engine API)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(3)
        sock.connect(path)
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        status_line = sock.recv(128).split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0


def _get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:  # noqa: S310 # nosec B310 - loopback URLs built here
            return resp.status, resp.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode(errors="replace")


@dataclass
class Component:
    name: str
    ports: dict[str, int]  # platform.yml key -> port: checked free before the start
    command: list[str]
    health: tuple[str, str]  # (kind, url): kind is http, https-client, https-selfsigned or unix (a socket path)
    state: Path  # pid file, log and working directory under it
    pki: Path | None = None  # the administrator's certificate for https-client health checks
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 60.0
    # A machine-wide service (the Docker engine): one already answering is used as it is, never stopped here.
    shared: bool = False
    # Steps around the process: after it is healthy (load the pause image), before it is signalled (stop the
    # node's containers while the runtime still answers) and after it stopped (undo its mounts and network state).
    after_start: Callable[[], None] | None = None
    before_stop: Callable[[], None] | None = None
    after_stop: Callable[[], None] | None = None

    @property
    def pidfile(self) -> Path:
        return self.state / "run" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.state / "logs" / f"{self.name}.log"

    def healthy(self) -> bool:
        kind, url = self.health
        try:
            if kind == "http":
                status, _ = _get(url)
            elif kind == "unix":
                status = _unix_ping(url)
            elif kind == "socket":  # a gRPC endpoint (containerd): accepting connections is all we can ask
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(3)
                    sock.connect(url)
                status = 200
            else:
                status, _ = _https_get(url, self.pki if kind == "https-client" else None)
        except (OSError, ssl.SSLError):
            return False
        return status == 200

    def running_pid(self) -> int | None:
        """The pid this checkout started, if that very process is still alive."""
        try:
            pid_text, started = self.pidfile.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if start_time(pid) == started else None


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has finished; it only waits to be reaped
        return None
    return fields[19]


def port_in_use(port: int) -> bool:
    """Whether the port is held on loopback (the kubelet's API port on the host's address is not checked here: a
    kubelet that cannot bind it exits, and `start` shows its log)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(comp: Component) -> bool:
    """Start one component unless this checkout already runs it. Returns True when started."""
    if comp.shared and not comp.running_pid() and comp.healthy():
        return False
    if comp.running_pid():
        if comp.healthy():
            return False
        if wait_healthy(comp, 15):
            return False
        raise PlatformError(f"{comp.name} (pid {comp.running_pid()}) is running but unhealthy; "
                            f"see {comp.logfile} or run `make down && make up`:\n{_log_tail(comp.logfile)}")
    if comp.pidfile.exists():
        log(f"{comp.name} died since it was started (pid file {comp.pidfile}); last lines of "
            f"{comp.logfile}:\n{_log_tail(comp.logfile, 8)}\n[platform] starting {comp.name} again")
        comp.pidfile.unlink()
    for key, port in comp.ports.items():
        if port_in_use(port):
            raise PlatformError(
                f"port {port} on 127.0.0.1, needed by {comp.name} ({key} in "
                f"localplatform/platform.yml), is in use by another process; stop that process "
                f"(`ss -ltnp 'sport = :{port}'` names it) or change the port in platform.yml")
    exe = Path(comp.command[0])
    if not exe.is_file():
        raise PlatformError(f"{comp.name}: binary {exe} is missing; run `make toolchain`")
    comp.pidfile.parent.mkdir(parents=True, exist_ok=True)
    comp.logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(comp.logfile, "ab") as logf:
        proc = subprocess.Popen(comp.command, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, **comp.env), start_new_session=True, cwd=comp.state)
    started = start_time(proc.pid)
    comp.pidfile.write_text(f"{proc.pid} {started}\n")
    if not wait_healthy(comp, comp.start_timeout, proc):
        if proc.poll() is not None:
            comp.pidfile.unlink(missing_ok=True)
            raise PlatformError(f"{comp.name} exited with code {proc.returncode} while starting; "
                                f"last lines of {comp.logfile}:\n{_log_tail(comp.logfile)}")
        raise PlatformError(f"{comp.name} did not become healthy within {comp.start_timeout:.0f}s "
                            f"({comp.health[1]}); last lines of {comp.logfile}:\n{_log_tail(comp.logfile)}")
    if comp.after_start:
        comp.after_start()
    return True


def wait_healthy(comp: Component, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if comp.healthy():
            return True
        time.sleep(0.3)
    return False


def stop(comp: Component, timeout: float = 20) -> bool:
    pid = comp.running_pid()
    comp_was_running = pid is not None
    if pid and comp.before_stop:
        comp.before_stop()
    if pid:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while start_time(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if start_time(pid):
            os.killpg(pid, signal.SIGKILL)
    comp.pidfile.unlink(missing_ok=True)
    if comp.after_stop and comp_was_running:
        comp.after_stop()
    return comp_was_running
