"""colors_database_login: the login not in use gets the new password; the one in use keeps working; both act as
the owner. Against a real PostgreSQL (TLS only, password logins, verify-full against its own CA)."""

from __future__ import annotations

import socket
import uuid

import pytest
from colors_platform.database import database_certificates
from helpers import load_plugin, postgres_server

module = load_plugin("plugins/modules/colors_database_login.py")
database = load_plugin("plugins/module_utils/colors_database.py")
URL = ("postgresql://colors_app:old@db.example.internal:5432/colors_app"  # pragma: allowlist secret
       "?sslmode=verify-full&sslrootcert=/etc/ca.pem")


def test_the_two_logins_take_turns():
    assert database.alternate("colors_app") == ("colors_app", "colors_app_clone")
    assert database.alternate("colors_app_clone") == ("colors_app", "colors_app")


def test_the_new_url_keeps_host_port_database_and_query_and_encodes_the_login():
    url = database.with_login(URL, "colors_app_clone", "p@ss/w:rd")
    assert url == ("postgresql://colors_app_clone:p%40ss%2Fw%3Ard@db.example.internal:5432"  # pragma: allowlist secret
                   "/colors_app?sslmode=verify-full&sslrootcert=/etc/ca.pem")


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "postgresql://h:5432/db", "postgresql://u:p@h:5432/"])
def test_a_url_that_is_not_postgresqls_with_a_user_host_and_database_is_refused_naming_the_form(url):
    with pytest.raises(database.LoginError, match="postgresql://<user>:<password>@<host>:<port>/<db>"):
        database.parse(url)


def _host_address() -> str:
    """A non-loopback address of this machine: password logins are required there (loopback trusts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: the kernel only picks the route's source address
        address = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("this machine has no address but loopback")
    return address


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The owner colors_app (a login, as the runbook creates it) owning database colors_app, TLS only."""
    import psycopg

    address = _host_address()
    folder = tmp_path_factory.mktemp("database-ca")
    certificates = database_certificates(folder, address)
    (folder / "ca.pem").write_bytes(certificates.ca)
    with postgres_server(address, tls=certificates.server) as (superuser, _, _):
        master_password = uuid.uuid4().hex
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE colors PASSWORD '{master_password}'")
            conn.execute("CREATE ROLE colors_app LOGIN PASSWORD 'first'")
            conn.execute("CREATE DATABASE colors_app OWNER colors_app")
        port = superuser.rsplit(":", 1)[1].split("/", 1)[0]
        url = f"postgresql://colors_app:first@{address}:{port}/colors_app"  # pragma: allowlist secret
        yield {"url": f"{url}?sslmode=verify-full", "ca": str(folder / "ca.pem"), "master_password": master_password}


def _params(server, current_url: str, password: str, master_password: str | None = None) -> dict:
    return {"current_url": current_url, "password": password, "master_user": "colors",
            "master_password": master_password or server["master_password"], "ca_file": server["ca"],
            "connect_timeout": 5}


def _as(server, url: str, sql: str):
    import psycopg

    with psycopg.connect(url, sslrootcert=server["ca"], autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchone() if cursor.description else None


def test_check_mode_names_the_login_that_would_rotate_and_creates_nothing(server):
    result = module.rotate(_params(server, server["url"], "unused"), check_mode=True)
    assert (result["user"], result["previous_user"], result["created"]) == ("colors_app_clone", "colors_app", True)
    assert _as(server, server["url"], "SELECT count(*) FROM pg_roles WHERE rolname = 'colors_app_clone'") == (0,)


def test_a_wrong_master_password_fails_naming_the_master_user_and_changes_nothing(server):
    wrong = uuid.uuid4().hex
    with pytest.raises(database.LoginError, match=r"cannot connect to .* as the master user colors"):
        module.rotate(_params(server, server["url"], "unused", master_password=wrong), check_mode=False)
    assert _as(server, server["url"], "SELECT count(*) FROM pg_roles WHERE rolname = 'colors_app_clone'") == (0,)


def test_rotations_alternate_the_logins_and_never_break_the_one_in_use(server):
    first = module.rotate(_params(server, server["url"], "second"), check_mode=False)
    assert (first["user"], first["created"]) == ("colors_app_clone", True)
    clone_url = database.with_login(server["url"], "colors_app_clone", "second")
    # The clone acts as the owner: what it creates is the owner's.
    assert _as(server, clone_url, "SELECT session_user, current_user") == ("colors_app_clone", "colors_app")
    _as(server, clone_url, "CREATE TABLE made_by_the_clone (id int)")
    assert _as(server, server["url"], "SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_the_clone'") \
        == ("colors_app",)
    assert _as(server, server["url"], "SELECT 1") == (1,)  # the login in use keeps its password
    # The next rotation, from the clone's URL: the owner's login gets the new password; the clone's still works.
    second = module.rotate(_params(server, clone_url, "third"), check_mode=False)
    assert (second["user"], second["previous_user"], second["created"]) == ("colors_app", "colors_app_clone", False)
    assert _as(server, database.with_login(server["url"], "colors_app", "third"), "SELECT current_user") == \
        ("colors_app",)
    assert _as(server, clone_url, "SELECT 1") == (1,)
