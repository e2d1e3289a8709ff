"""Filters of the database login: the application's connection URL with another login (docs: <filter name>.yml
beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.colors.deploy.plugins.module_utils.colors_database import LoginError, with_login


def database_login_url(url: str, user: str, password: str) -> str:
    try:
        return with_login(url, user, password)
    except LoginError as exc:
        raise AnsibleFilterError(f"database_login_url: {exc}") from None


class FilterModule:
    def filters(self):
        return {"database_login_url": database_login_url}
