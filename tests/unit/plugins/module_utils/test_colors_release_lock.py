"""Unit tests of the release lock (plugins/module_utils/colors_release_lock.py) against a fake Lease API."""

from __future__ import annotations

import copy
import datetime
import re

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


def test_release_of_someone_elses_lock_leaves_it_unless_forced(env):
    api, _, lock = env
    lock.acquire("alice@ci", 600)
    left = lock.release("bob@laptop")
    assert left["changed"] is False and left["holder"] == "alice@ci"
    assert re.search(r"Not releasing: .* held by alice@ci", left["msg"])
    assert api.read("colors", "colors-release")["spec"]["holderIdentity"] == "alice@ci"
    assert lock.release("bob@laptop", force=True)["previous_holder"] == "alice@ci"


# --- renewal and fencing: the lock held for the release engine while it runs ---------------------------------------

class Monotonic:
    """The fence's clock and sleep, advancing the Lease clock with them."""

    def __init__(self, clock):
        self.now, self.lease_clock = 0.0, clock

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.lease_clock.advance(seconds)


def _fence(env, duration=60):
    _, clock, lock = env
    lock.acquire("alice@ci/run-1", duration)
    mono = Monotonic(clock)
    return lock_mod.Fence(lock, "alice@ci/run-1", duration, clock=mono, sleep=mono.sleep), mono


def test_renewal_keeps_the_acquire_time_and_moves_the_renew_time(env):
    api, clock, lock = env
    lock.acquire("alice@ci", 60)
    acquired = api.read("colors", "colors-release")["spec"]["acquireTime"]
    clock.advance(20)
    lock.renew("alice@ci", 60)
    spec = api.read("colors", "colors-release")["spec"]
    assert spec["acquireTime"] == acquired and spec["renewTime"] == "2026-11-27T12:00:20.000000Z"


def test_the_engines_waits_renew_at_a_third_of_the_duration_so_a_long_release_keeps_its_lock(env):
    api, _, lock = env
    fence, mono = _fence(env, duration=60)
    fence.hold()
    writes = api.writes
    for _ in range(600):  # ten minutes of 1 s waits: ten times the lease duration
        fence.sleep(1)
        with pytest.raises(lock_mod.LockHeld):  # nobody else gets it meanwhile
            lock.acquire("bob@laptop", 60)
    assert 29 <= api.writes - writes <= 31  # one renewal per 20 s
    assert mono.now == 600 and lock.read().holder == "alice@ci/run-1"


def test_a_lock_taken_over_is_lost_and_never_taken_back(env):
    api, clock, lock = env
    fence, _ = _fence(env, duration=30)
    fence.hold()
    clock.advance(31)  # the run stalled past its lease (no waits: no renewal), and another run took over
    lock.acquire("bob@laptop/run-2", 60)
    with pytest.raises(lock_mod.LockLost, match=r"This run \(alice@ci/run-1\) lost the release lock: .* held by "
                                                r"bob@laptop/run-2"):
        fence.hold()
    lock.release("bob@laptop/run-2")
    with pytest.raises(lock_mod.LockLost, match="is free"):  # broken and given back: still lost, not re-created
        fence.hold()
    assert api.read("colors", "colors-release") is None


def test_a_renewal_that_races_another_write_reads_again_before_deciding(env):
    api, _, lock = env
    lock.acquire("alice@ci", 60)
    replace = api.replace
    raced = []

    def once_conflicting(namespace, name, body):
        if not raced:
            raced.append(True)
            lock_mod.ReleaseLock(api, "colors", "colors-release", lock.clock).acquire("alice@ci", 60)  # our own
            return replace(namespace, name, body)  # now stale: Conflict
        return replace(namespace, name, body)

    api.replace = once_conflicting
    assert lock.renew("alice@ci", 60).holder == "alice@ci"
    assert raced == [True]


def test_an_unreachable_api_server_is_waited_out_only_while_the_lease_lasts(env):
    api, _, _ = env
    fence, _ = _fence(env, duration=60)
    fence.hold()
    read = api.read
    api.read = lambda *a: (_ for _ in ()).throw(ConnectionRefusedError("connection refused"))
    for _ in range(39):  # renewals fail from 20 s on; 40 s in, a third of the lease is all that is left
        fence.sleep(1)
    with pytest.raises(lock_mod.LockLost, match=r"could not renew .* for 4\ds of its 60s \(ConnectionRefusedError"):
        for _ in range(5):
            fence.sleep(1)
    api.read = read


class Writes:
    """A stand-in for ClusterApi: reads answer, writes are counted."""

    def __init__(self):
        self.made = []

    def get_deployment(self, namespace, name):
        return {"name": name}

    def apply(self, kind, body):
        self.made.append(("apply", kind))
        return body

    def record(self, namespace, release, entry):
        self.made.append(("record", entry["id"]))


def test_a_run_that_lost_the_lock_can_write_nothing_more(env):
    _, _, lock = env
    fence, _ = _fence(env)
    api = Writes()
    fenced = fence.guard(api)
    fenced.apply("Deployment", {"kind": "Deployment"})
    lock.release("someone", force=True)
    lock.acquire("oncall@laptop/run-9", 60)
    assert fenced.get_deployment("colors", "colors") == {"name": "colors"}  # reading is no harm
    for write in (lambda: fenced.apply("Service", {}), lambda: fenced.record("colors", "colors", {"id": "1"})):
        with pytest.raises(lock_mod.LockLost, match="held by oncall@laptop/run-9"):
            write()
    assert api.made == [("apply", "Deployment")]


def test_every_call_of_the_engine_that_changes_the_cluster_is_fenced():
    """ClusterApi's methods are reads or writes; a new write that FencedApi does not know would go through unfenced."""
    import inspect

    cluster = load_plugin("plugins/module_utils/colors_release_cluster.py")
    methods = {name for name, _ in inspect.getmembers(cluster.ClusterApi, inspect.isfunction)
               if not name.startswith("_")}
    assert methods - cluster.READS == lock_mod.WRITES


def test_by_default_a_dead_runs_lock_frees_within_a_minute():
    """The integration test kills a holder on a 30 s lease (the mechanism); the duration every run really gets - the
    role's default, the modules' and the argument spec's - is what bounds how long a dead run blocks releases."""
    import yaml
    from helpers import REPO

    role = yaml.safe_load((REPO / "roles/app_release/defaults/main.yml").read_text())["app_release_lock_duration"]
    spec = yaml.safe_load((REPO / "roles/app_release/meta/argument_specs.yml").read_text())
    specs = {entry: options["options"]["app_release_lock_duration"]["default"]
             for entry, options in spec["argument_specs"].items()
             if "app_release_lock_duration" in options.get("options", {})}
    assert role == 60 and specs and set(specs.values()) == {60}, specs
    assert lock_mod.LOCK_ARG_SPEC["options"]["duration"]["default"] == 60
