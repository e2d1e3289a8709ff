"""The release engine's cluster calls through an API server that goes away (colors_release_cluster.Resilient): reads
ride out an outage within the tolerance, a write is never sent twice, and past it the run stops in one line."""

from __future__ import annotations

import inspect

import pytest
import urllib3
from helpers import load_plugin

cluster = load_plugin("plugins/module_utils/colors_release_cluster.py")
lock_mod = load_plugin("plugins/module_utils/colors_release_lock.py")
engine = load_plugin("plugins/module_utils/colors_release_engine.py")
test_engine = load_plugin("tests/unit/plugins/module_utils/test_colors_release_engine.py")

REFUSED = urllib3.exceptions.MaxRetryError(None, "/apis/apps/v1", "Connection refused")


class Away:
    """Wraps an API double: the API server is away from call number `down_at` for `calls` calls (None: for good)."""

    def __init__(self, api, down_at: int = 0, calls: int | None = None, error: Exception = REFUSED):
        self.api, self.down_at, self.calls, self.error = api, down_at, calls, error
        self.made: list[str] = []

    def __getattr__(self, name):
        attribute = getattr(self.api, name)

        def call(*args, **kwargs):
            self.made.append(name)
            n = len(self.made) - 1
            if n >= self.down_at and (self.calls is None or n < self.down_at + self.calls):
                raise self.error
            return attribute(*args, **kwargs)
        return call


class Api:
    def get_deployment(self, namespace, name):
        return {"metadata": {"name": name}}

    def apply(self, kind, body):
        return body


Clock = test_engine.Clock  # a clock that moves only when slept


def resilient(api, tolerance=60.0):
    clock = Clock()
    return cluster.Resilient(api, "the release of 1.1.0", tolerance, clock=clock, sleep=clock.sleep), clock


def test_every_call_of_the_cluster_api_is_a_read_or_a_write():
    """Reads may be asked again, writes never: a new method in neither set would be treated as a write."""
    methods = {name for name, _ in inspect.getmembers(cluster.ClusterApi, inspect.isfunction)
               if not name.startswith("_")}
    assert methods == cluster.READS | lock_mod.WRITES and not cluster.READS & lock_mod.WRITES


def test_a_read_rides_out_an_api_server_away_for_a_moment():
    away = Away(Api(), down_at=0, calls=3)
    api, clock = resilient(away)
    assert api.get_deployment("colors", "colors") == {"metadata": {"name": "colors"}}
    assert away.made == ["get_deployment"] * 4 and clock.now == 0.5 + 1 + 2  # back-off between the asks


@pytest.mark.parametrize("status", [500, 503, 504])
def test_an_api_server_answering_5xx_is_asked_again(status):
    class Unavailable(Exception):
        pass

    error = Unavailable("etcdserver: leader changed")
    error.status = status
    away = Away(Api(), calls=1, error=error)
    api, _ = resilient(away)
    assert api.get_deployment("colors", "colors")["metadata"]["name"] == "colors"


def test_a_read_past_the_tolerance_stops_the_run_in_one_line():
    api, clock = resilient(Away(Api()), tolerance=30)
    with pytest.raises(cluster.ApiUnavailable) as err:
        api.get_deployment("colors", "colors")
    message = str(err.value)
    assert message.startswith("The Kubernetes API server stopped answering during the release of 1.1.0: a read "
                              "(get_deployment) failed for 3")
    assert "MaxRetryError" in message and "Connection refused" in message
    assert "This run stops and writes nothing more; what happened since is unknown. Once the cluster answers, run " \
           "the same command again: it finds the Deployment as it is and converges" in message
    assert "\n" not in message and 30 <= clock.now < 36
    assert isinstance(err.value, engine.ReleaseFailed)  # the modules fail with it as with any release failure


def test_a_write_is_never_sent_twice():
    away = Away(Api())
    api, clock = resilient(away)
    with pytest.raises(cluster.ApiUnavailable, match=r"a change \(apply\) failed \(MaxRetryError.*whether that "
                                                     r"change was made is unknown"):
        api.apply("Deployment", {})
    assert away.made == ["apply"] and clock.now == 0


def test_an_answer_of_the_api_server_passes_through_untouched():
    """A read this run was never allowed is refused at once: a missing grant is named without waiting."""
    away = Away(Api(), error=Forbidden("deployments.apps is forbidden"))
    api, clock = resilient(away)
    with pytest.raises(Forbidden):
        api.get_deployment("colors", "colors")
    assert away.made == ["get_deployment"] and clock.now == 0


class Forbidden(Exception):
    status = 403


def test_a_read_refused_after_it_was_allowed_is_asked_again_within_the_tolerance():
    """An API server just started answers before its authorizer has loaded the grants: a read this run was allowed
    is asked again, and the answer, once the grants are loaded, is the run's."""
    away = Away(Api(), down_at=1, calls=2, error=Forbidden("deployments.apps is forbidden"))
    api, clock = resilient(away)
    assert api.get_deployment("colors", "colors")["metadata"]["name"] == "colors"  # allowed
    assert api.get_deployment("colors", "colors")["metadata"]["name"] == "colors"  # refused twice, then allowed
    assert away.made == ["get_deployment"] * 4 and clock.now == 0.5 + 1


def test_a_refusal_that_lasts_past_the_tolerance_passes_through_as_it_came():
    away = Away(Api(), down_at=1, error=Forbidden("deployments.apps is forbidden"))
    api, clock = resilient(away, tolerance=10)
    api.get_deployment("colors", "colors")
    with pytest.raises(Forbidden, match=r"deployments\.apps is forbidden"):
        api.get_deployment("colors", "colors")
    assert 10 <= clock.now < 16


def test_a_refused_write_is_never_sent_twice_even_when_it_was_allowed_before():
    away = Away(Api(), down_at=1, error=Forbidden("deployments.apps is forbidden"))
    api, clock = resilient(away)
    api.apply("Deployment", {})
    with pytest.raises(Forbidden):
        api.apply("Deployment", {})
    assert away.made == ["apply", "apply"] and clock.now == 0


def test_a_release_whose_api_server_goes_away_mid_watch_stops_and_writes_nothing_more():
    """Measured on the in-memory cluster: the rollout is written, then the API server never answers again."""
    fake = test_engine.FakeCluster({"colors:1.1.0": "ContainerCreating"})
    test_engine.release(fake, "colors:1.0.0")
    entries = len(fake.entries)
    away = Away(fake, down_at=3)  # get_deployment, replicasets, apply: then gone
    clock = Clock()
    api = cluster.Resilient(away, "the release of 1.1.0", 60, clock=clock, sleep=clock.sleep)
    params = {"namespace": "colors", "deployment": test_engine.manifest("colors:1.1.0"), "version": "1.1.0",
              "actor": "tester", "auto_rollback": True, "poll_interval": 0}
    with pytest.raises(cluster.ApiUnavailable, match=r"stopped answering during the release of 1\.1\.0"):
        engine.RollingRelease(api, params, clock=clock, sleep=clock.sleep).run()
    assert away.made[:3] == ["get_deployment", "replicasets", "apply"]
    assert set(away.made[3:]) <= cluster.READS, away.made  # nothing written after the outage began
    assert len(fake.entries) == entries  # no verdict recorded: the outcome is unknown, not a failure or a success
