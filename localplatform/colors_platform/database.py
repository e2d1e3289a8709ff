"""A real PostgreSQL where production has RDS: Debian's server, throw-away clusters on free ports, with a CA of its
own and the CA bundle served over HTTP as AWS serves RDS's (truststore.pki.rds.amazonaws.com). Used by the tests and
by the staging rehearsal; only endpoints differ from production (the host, the bundle's URL)."""

from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port of `address` nothing listens on right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def self_signed_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) of a new CA named `name`, valid one day."""
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1",
             "-subj", f"/CN=Colors test {name}")
    return crt, key


@dataclass
class Certificates:
    ca: bytes  # the database's CA (PEM): what the release fetches and mounts
    other: bytes  # a CA that signed nothing: a bundle that does not verify the server
    server: tuple[Path, Path]  # the server's certificate (for `address`) and key


def database_certificates(folder: Path, address: str) -> Certificates:
    """The database's own CA and its server certificate for `address` (an IP: subjectAltName IP), and a CA that
    signed nothing."""
    ca, ca_key = self_signed_ca(folder, "database CA")
    other, _ = self_signed_ca(folder, "other CA")
    key, csr, crt, ext = (folder / n for n in ("server.key", "server.csr", "server.crt", "server.ext"))
    ext.write_text(f"subjectAltName=IP:{address}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={address}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(crt), "-days", "1", "-extfile", str(ext))
    return Certificates(ca=ca.read_bytes(), other=other.read_bytes(), server=(crt, key))


@contextlib.contextmanager
def served_bundle(pem: bytes) -> Iterator[tuple[str, dict]]:
    """A CA bundle served over HTTP on loopback, as the region's RDS bundle is: yields (url, served), where
    served["pem"] is what it answers (a test swaps it)."""
    served = {"pem": pem}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-pem-file")
            self.end_headers()
            self.wfile.write(served["pem"])

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/ca-bundle.pem", served
    finally:
        server.shutdown()


@contextlib.contextmanager
def postgres_server(address: str = "127.0.0.1", tls: tuple[Path, Path] | None = None):
    """A throw-away PostgreSQL cluster on a free port of `address` (loopback by default), run as the `postgres` user
    (the server refuses root). Yields (url, stop, start): stop() and start() take the server down and up again (an
    outage). The url is the superuser's, over loopback; on another address (the worker node's pods reach the host's)
    only password logins are accepted, as from an RDS client - and with tls (certificate, key) only over TLS."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs:
        raise RuntimeError("PostgreSQL server binaries are missing: `make toolchain` installs the postgresql package")
    bindir, port = Path(bindirs[-1]), free_port()
    data = Path(tempfile.mkdtemp(prefix="colors-pg-"))
    shutil.chown(data, "postgres", "postgres")

    def pg(*argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, text=True,
                       timeout=120)

    def start() -> None:
        pg(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "server.log"),
           "-o", f"-p {port} -k {data} -c listen_addresses={','.join(sorted({'127.0.0.1', address}))}" + ssl, "start")

    def stop() -> None:
        pg(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop")

    pg(str(bindir / "initdb"), "-D", str(data / "db"), "-U", "colors", "--auth=trust", "-E", "UTF8")
    ssl = ""
    if tls:
        for source, name in zip(tls, ("server.crt", "server.key"), strict=True):
            shutil.copy(source, data / name)
            shutil.chown(data / name, "postgres", "postgres")
            (data / name).chmod(0o600)
        ssl = f" -c ssl=on -c ssl_cert_file={data / 'server.crt'} -c ssl_key_file={data / 'server.key'}"
    if address != "127.0.0.1":
        hba = data / "db" / "pg_hba.conf"
        hba.write_text(hba.read_text() + f"{'hostssl' if tls else 'host'} all all 0.0.0.0/0 scram-sha-256\n")
    start()
    try:
        pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "colors", "colors")
        yield f"postgresql://colors@127.0.0.1:{port}/colors", stop, start
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m",
                        "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(data, ignore_errors=True)
