"""The application's PostgreSQL connection URL and its two alternating login users (colors_database_login, the
database_login_url filter)."""

from __future__ import annotations

import urllib.parse

CLONE = "_clone"


class LoginError(Exception):
    """What is wrong, in one line."""


def parse(url: str) -> urllib.parse.SplitResult:
    """The URL, checked: PostgreSQL's scheme, a user, a host and a database."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.username or not parts.hostname \
            or not parts.path.strip("/"):
        raise LoginError("database_url is not a PostgreSQL URL with a user, a host and a database "
                         "(postgresql://<user>:<password>@<host>:<port>/<db>?sslmode=verify-full&...)")
    return parts


def alternate(user: str) -> tuple[str, str]:
    """(owner, the other login user) of the login user in use: <owner> and <owner>_clone take turns."""
    owner = user.removesuffix(CLONE)
    if not owner:
        raise LoginError(f"the login user {user!r} names no owner")
    return owner, (owner if user.endswith(CLONE) else owner + CLONE)


def with_login(url: str, user: str, password: str) -> str:
    """The URL with another user and password; host, port, database and query kept."""
    parts = parse(url)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
