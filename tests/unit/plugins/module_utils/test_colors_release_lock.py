"""Unit tests of the release lock (plugins/module_utils/colors_release_lock.py) against a fake Lease API."""

from __future__ import annotations

import copy
import datetime

import pytest
from helpers import load_plugin

lock_mod = load_plugin("plugins/module_utils/colors_release_lock.py")
T0 = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.UTC)


class Conflict(Exception):
    status = 409


class FakeLeaseApi:
    """An in-memory Lease store that enforces resourceVersion like the API server."""

    def __init__(self):
        self.leases: dict[str, dict] = {}
        self.version = 0
        self.writes = 0

    def read(self, namespace, name):
        lease = self.leases.get(f"{namespace}/{name}")
        return copy.deepcopy(lease)

    def _store(self, key, body):
        self.version += 1
        self.writes += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.leases[key] = body

    def create(self, namespace, body):
        key = f"{namespace}/{body['metadata']['name']}"
        if key in self.leases:
            raise Conflict("already exists")
        self._store(key, body)

    def replace(self, namespace, name, body):
        key = f"{namespace}/{name}"
        if self.leases[key]["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise Conflict("the object has been modified")
        self._store(key, body)

    def delete(self, namespace, name, resource_version):
        key = f"{namespace}/{name}"
        if self.leases[key]["metadata"]["resourceVersion"] != resource_version:
            raise Conflict("precondition failed")
        self.writes += 1
        del self.leases[key]


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def env():
    api, clock = FakeLeaseApi(), Clock()
    return api, clock, lock_mod.ReleaseLock(api, "colors", "colors-release", clock)


def test_a_free_lock_is_acquired(env):
    api, _, lock = env
    result = lock.acquire("alice@ci", 600)
    assert result["changed"] and result["holder"] == "alice@ci" and result["previous_holder"] is None
    spec = api.leases["colors/colors-release"]["spec"]
    assert spec["holderIdentity"] == "alice@ci" and spec["leaseDurationSeconds"] == 600
    assert spec["renewTime"] == "2026-11-27T12:00:00.000000Z"


def test_a_second_run_is_refused_naming_the_holder_and_expiry(env):
    _, clock, lock = env
    lock.acquire("alice@ci", 600)
    clock.advance(100)
    with pytest.raises(lock_mod.LockHeld) as err:
        lock.acquire("bob@laptop", 600)
    message = str(err.value)
    assert "held by alice@ci since 2026-11-27T12:00:00" in message
    assert "expiring at 2026-11-27T12:10:00" in message and "in 500s" in message


def test_the_holder_renews_and_keeps_its_acquire_time(env):
    api, clock, lock = env
    lock.acquire("alice@ci", 600)
    clock.advance(300)
    result = lock.acquire("alice@ci", 600)
    assert result["renewed"] is True
    spec = api.leases["colors/colors-release"]["spec"]
    assert spec["acquireTime"].startswith("2026-11-27T12:00:00") and spec["renewTime"].startswith("2026-11-27T12:05:00")


def test_an_expired_lock_of_a_dead_run_is_taken_over(env):
    _, clock, lock = env
    lock.acquire("alice@ci", 60)
    clock.advance(61)
    result = lock.acquire("bob@laptop", 600)
    assert result["holder"] == "bob@laptop" and result["previous_holder"] == "alice@ci"
    assert result["expired_holder_taken_over"] is True


def test_two_runs_racing_for_an_expired_lock_cannot_both_win(env):
    api, clock, lock = env
    lock.acquire("alice@ci", 60)
    clock.advance(61)
    stale = lock.read()
    lock.acquire("bob@laptop", 600)  # bob wins the race
    lock.read = lambda: stale  # carol read the lease before bob wrote it
    with pytest.raises(Conflict):
        lock.acquire("carol@ci", 600)
    assert api.leases["colors/colors-release"]["spec"]["holderIdentity"] == "bob@laptop"


def test_check_mode_reports_and_writes_nothing(env):
    api, _, lock = env
    assert lock.acquire("alice@ci", 600, check_mode=True)["changed"] is True
    assert api.writes == 0 and not api.leases
    lock.acquire("alice@ci", 600)
    assert lock.release("alice@ci", check_mode=True)["changed"] is True
    assert api.writes == 1 and api.leases


def test_release_by_the_holder_frees_the_lock_and_is_idempotent(env):
    _, _, lock = env
    lock.acquire("alice@ci", 600)
    assert lock.release("alice@ci") == {"changed": True, "holder": None, "previous_holder": "alice@ci"}
    assert lock.release("alice@ci")["changed"] is False
    assert lock.acquire("bob@laptop", 600)["previous_holder"] is None


def test_release_of_someone_elses_lock_needs_force(env):
    _, _, lock = env
    lock.acquire("alice@ci", 600)
    with pytest.raises(lock_mod.LockHeld, match=r"Not releasing: .* held by alice@ci"):
        lock.release("bob@laptop")
    assert lock.release("bob@laptop", force=True)["previous_holder"] == "alice@ci"
