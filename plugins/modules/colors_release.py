#!/usr/bin/python
"""Ansible module colors_release: roll out a release with health gates, fail fast and roll back."""

from __future__ import annotations

DOCUMENTATION = r"""
module: colors_release
short_description: Roll out a Colors release with health gates, fail-fast verdicts and automatic rollback
description:
  - Applies the rendered Deployment (and Service) with server-side apply, then watches the health gates at
    every poll - rollout conditions, pod readiness, crash-looping and image-pull failures read from the pods of
    the new revision, then an HTTP smoke check and Prometheus query thresholds when configured.
  - Fails fast - a crash loop or an image that cannot be pulled fails the release at once; readiness that
    never turns true fails when the controller reports ProgressDeadlineExceeded, so a verdict comes within
    progressDeadlineSeconds plus one poll.
  - On a failed gate with I(auto_rollback), restores the previous revision's pod template, waits until it is
    healthy, then fails naming the gate, the evidence and the release restored.
  - Judges only what it applied - a Deployment changed by another hand during the release (a later generation than
    its own write, or deleted) fails gate changed-during-release naming what it found; the release then restores
    nothing and is recorded as aborted, never as succeeded.
  - Records every release attempt in the release ledger (ConfigMaps labelled colors.io/release-ledger).
  - A release whose Deployment already matches and is healthy changes nothing; one left unfinished by an
    interrupted run is watched again until it converges.
  - In check mode the apply is a server-side dry run; the module reports whether the release would change.
options:
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  deployment:
    description: The rendered Deployment manifest (apps/v1).
    type: dict
    required: true
  service:
    description: The rendered Service manifest, applied with the Deployment.
    type: dict
  version:
    description: Version being released (recorded in the ledger).
    type: str
    required: true
  previous_version:
    description: Version running before this release, when known (recorded in the ledger).
    type: str
  actor:
    description: Who releases (recorded in the ledger).
    type: str
    required: true
  strategy:
    description:
      - C(rolling) updates the Deployment in place (maxSurge/maxUnavailable of the manifest).
      - C(blue_green) releases to the idle one of two Deployments (I(name)-blue, I(name)-green) at full size
        and switches the Service selector only when every gate passed; the previous colour keeps running for
        an instant switch-back, and a failed release never receives traffic. Needs I(service).
      - C(canary) runs the new version beside the stable Deployment in I(canary_steps), with the gates and a
        pause at each step; a failed gate removes the canary and restores the stable size; after the last step
        the stable Deployment takes the new version (rolling, gated).
    type: str
    choices: [rolling, blue_green, canary]
    default: rolling
  canary_steps:
    description: >-
      Steps of a canary - percent, canary and stable replicas (the C(colors.deploy.canary_steps) filter's
      output).
    type: list
    elements: dict
    default: []
  canary_pause:
    description: Seconds a canary step waits before its gates run.
    type: float
    default: 0
  auto_rollback:
    description: Restore the previous revision when a gate fails (rolling; blue_green never routes a failed release).
    type: bool
    default: true
  pre_empts:
    description: Holder of the release lock this run broke to run (recorded in the ledger as C(pre_empted)).
    type: str
  freeze_override:
    description: Why this release goes out during a deploy freeze (recorded in the ledger as C(freeze_override)).
    type: str
  restores:
    description:
      - This release restores an earlier version (rollback.yml to a version of a blue-green release, which releases
        it again to the idle colour). Recorded in the ledger as C(rollback=true), so the
        C(colors.deploy.release_report) filter counts it as a restoration, not as a change.
    type: bool
    default: false
  committed:
    description:
      - When the release's commit was made, UTC (C(YYYY-MM-DDTHH:MM:SSZ)), recorded in the ledger as C(committed).
      - The C(colors.deploy.release_report) filter's lead time for changes runs from it to the promotion.
    type: str
  contract_migrations:
    description:
      - The migrations this release ran that are not expand-only (contract), as its migration Job reported them.
      - Recorded in the ledger; a failed release that ran one is not rolled back automatically (the earlier
        release cannot run on that schema), and no later rollback goes back past it.
    type: list
    elements: str
    default: []
  poll_interval:
    description: Seconds between two looks at the gates.
    type: float
    default: 0.25
  progress_file:
    description:
      - File the release appends its progress to as it goes, one line per event - each step, the rollout's state
        whenever it changes (and every 10 s while it does not), the gates, a rollback.
      - The action plugin of this module sets it when the play does not, and prints each line as it is written,
        so a run shows where the release is. Empty - no progress is written.
    type: str
  http_smoke:
    description:
      - HTTP check after the rollout (skipped without I(url) or I(path)).
      - With I(path), the check asks the release's Service through the API server's service proxy, as the run's
        identity - reachable from wherever the deploy runs (a runner in the VPC, AWX). A blue-green release asks
        its preview Service (C(<service>-preview)), which routes to the colour being judged, before the switch.
    type: dict
    suboptions:
      url:
        description: URL to GET (takes precedence over I(path)).
        type: str
      path:
        description: Path (with its query) to GET on the Service, through the API server.
        type: str
      port:
        description: Name of the Service's port that I(path) is asked on.
        type: str
        default: http
      expect_status:
        description: Expected HTTP status.
        type: int
        default: 200
  prometheus:
    description: Prometheus thresholds checked after the rollout (skipped without I(url)).
    type: dict
    suboptions:
      url:
        description: Base URL of the Prometheus HTTP API (takes precedence over I(service)).
        type: str
      service:
        description:
          - The Service of the cluster's Prometheus (kube-prometheus-stack's), asked through the API server's
            service proxy as the run's identity, from wherever the deploy runs.
        type: dict
        suboptions:
          namespace:
            description: Namespace of the Service.
            type: str
            required: true
          name:
            description: Name of the Service.
            type: str
            required: true
          port:
            description: Name (or number) of the Service's port of the HTTP API.
            type: str
            required: true
      queries:
        description:
          - Instant queries (C(name), C(query), C(max)) and the highest acceptable value of each.
          - C($pods) in a query stands for the label matchers of the pods being judged - their namespace and
            the pod-template-hash of the new ReplicaSet (the canary's, the new colour's) - so a gate measures the
            new pods only.
          - A query that returns no data (no series, or only NaN) is inconclusive, never healthy; it is asked
            again until I(no_data_timeout), then the gate fails naming the query and the selector.
        type: list
        elements: dict
        default: []
      no_data_timeout:
        description:
          - Seconds a metric gate waits for its query to return data before it fails.
          - The same bound holds while Prometheus is unreachable or answers 5xx; then the gate fails as
            C(prometheus-unreachable) - inconclusive, the release is not promoted.
        type: float
        default: 180
  judge:
    description:
      - The canary judge (C(strategy=canary) or C(blue_green); it reads the I(prometheus) of the gates).
      - canary - at each step a baseline Deployment (C(<name>-baseline)) runs the live version at the canary's size
        beside the canary; every I(interval) seconds the rollouts of both, the threshold gates of I(prometheus) and
        the judge are looked at. A failed rollout, gate or judgement aborts at once; the step passes once the judge
        passes and I(canary_pause) is over. A gate above its maximum over fewer canary requests than the first ratio
        metric's C(min_sample), within the range the gate's query looks back over, is held, not obeyed (a handful
        of requests is noise) - the step cannot pass while it holds, and it fails the step if it still holds at
        I(max_analysis).
      - blue_green - after the switch, the new colour under the traffic it takes is compared with the previous
        colour's traffic of the I(max_analysis) seconds before the switch (read over a range); a failure switches
        the Service back at once and scales the new colour to zero. The first blue-green release has nothing to
        compare with and is not analysed.
      - Undecided at I(max_analysis) (too few requests, or marginal) the analysis is inconclusive and
        I(inconclusive) decides. The judge's record (samples, statistics, decision) goes into the step (canary) or
        C(analysis) (blue_green), the ledger and the job summary.
    type: dict
    suboptions:
      metrics:
        description:
          - Each a C(name), C(kind) (C(ratio), C(quantile), C(value)), C(tolerance) (the largest acceptable
            difference, in the metric's unit), and optional C(weight) (1), C(min_sample) (requests per side for
            ratio and quantile, windows for value; below it the analysis goes on), C(worse) (C(higher)).
          - ratio - C(bad) and C(total), cumulative counters; quantile - C(buckets), the histogram's cumulative
            bucket counters by C(le), and C(quantile) (0.99); value - C(query), read at each look.
          - C($pods) in a query stands for the label matchers of one side's pods (canary or baseline).
        type: list
        elements: dict
        required: true
      interval:
        description: Seconds between two looks.
        type: float
        default: 10
      max_analysis:
        description: Seconds a step's analysis may last before it is inconclusive.
        type: float
        default: 600
      alpha:
        description: The error rate of one look's tests.
        type: float
        default: 0.001
      pass_score:
        description: The weighted score (0-100) of the metrics that passed at or above which the step passes.
        type: float
        default: 95
      marginal_score:
        description: The score below which the judge fails the canary (between it and I(pass_score) - marginal).
        type: float
        default: 75
      inconclusive:
        description: What an undecided step does at I(max_analysis) - C(abort) it (recorded as inconclusive) or
          C(promote) it (recorded as such).
        type: str
        choices: [abort, promote]
        default: abort
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - colors.deploy.common
  - colors.deploy.common.lock
attributes:
  check_mode:
    support: full
    details: The apply is a server-side dry run; reports whether the release would change.
"""

EXAMPLES = r"""
- name: Release 1.4.2
  colors.deploy.colors_release:
    namespace: colors
    deployment: "{{ lookup('ansible.builtin.template', 'deployment.yml.j2') | from_yaml }}"
    version: "1.4.2"
    actor: ci/run-812
    prometheus:
      url: http://prometheus.monitoring:9090
      queries:
        - name: error-ratio
          query: >-
            sum(rate(colors_http_requests_total{$pods,status=~"5.."}[2m]))
            / sum(rate(colors_http_requests_total{$pods}[2m]))
          max: 0.02
      no_data_timeout: 120

- name: Release 1.4.3 blue-green, its gates through the API server (from a runner outside the cluster)
  colors.deploy.colors_release:
    namespace: colors
    deployment: "{{ lookup('ansible.builtin.template', 'deployment.yml.j2') | from_yaml }}"
    service: "{{ lookup('ansible.builtin.template', 'service.yml.j2') | from_yaml }}"
    strategy: blue_green
    version: "1.4.3"
    actor: ci/run-813
    http_smoke:
      path: /
    prometheus:
      service: {namespace: monitoring, name: monitoring-prometheus, port: http-web}
      queries:
        - name: error-ratio
          query: >-
            sum(rate(colors_http_requests_total{$pods,status=~"5.."}[2m]))
            / sum(rate(colors_http_requests_total{$pods}[2m]))
          max: 0.02

- name: Release 1.4.3 as a canary judged beside a baseline of the live version
  colors.deploy.colors_release:
    namespace: colors
    deployment: "{{ lookup('ansible.builtin.template', 'deployment.yml.j2') | from_yaml }}"
    version: "1.4.3"
    actor: ci/run-813
    strategy: canary
    canary_steps: "{{ [25, 50] | colors.deploy.canary_steps(4) }}"
    canary_pause: 60
    prometheus:
      url: http://prometheus.monitoring:9090
    judge:
      max_analysis: 900
      metrics:
        - name: error-ratio
          kind: ratio
          bad: sum(colors_http_requests_total{$pods,status=~"5.."})
          total: sum(colors_http_requests_total{$pods})
          tolerance: 0.005
          weight: 2
          min_sample: 200
        - name: latency-p99
          kind: quantile
          buckets: sum by (le) (colors_http_request_duration_seconds_bucket{$pods})
          quantile: 0.99
          tolerance: 0.02
          min_sample: 200
"""

RETURN = r"""
active_color:
  description: Colour the Service selects after the release (blue_green).
  returned: with strategy=blue_green
  type: str
verdict:
  description: The final verdict - state (healthy, failed, unchanged, would-release), gate, evidence, revision, seconds.
  returned: always
  type: dict
image:
  description: Image released.
  returned: always
  type: str
previous_image:
  description: Image running before the release.
  returned: always
  type: str
rolled_back:
  description: Whether the previous revision was restored.
  returned: when a gate failed
  type: bool
restored:
  description: The restored revision - image, from_revision, state, seconds.
  returned: when rolled back
  type: dict
ledger_entry:
  description: The ledger entry recorded for this attempt.
  returned: when the release was attempted
  type: dict
steps:
  description:
    - The canary's steps - percent, canary and stable replicas, state; with a I(judge), C(judge) - the analysis' state
      (passed, failed, inconclusive, aborted), looks, seconds, score, the judge's last state and each metric's
      outcome, reason, samples and statistics.
  returned: with strategy=canary
  type: list
  elements: dict
analysis:
  description: The judge's analysis after a blue-green switch - as a judged canary step's C(judge).
  returned: with strategy=blue_green and a judge, when a colour served before the release
  type: dict
"""

import contextlib  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402, F401
    AUTH_ARG_SPEC,
    OperatorError,
    run_module,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402
    argument_spec as k8s_argument_spec,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_analysis import (  # noqa: E402
    config_problem,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import (  # noqa: E402
    ClusterApi,
    Resilient,
    image_of,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_engine import (  # noqa: E402
    BlueGreenRelease,
    CanaryRelease,
    RollingRelease,
    refuse_an_earlier_release_past_a_contract,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_lock import (  # noqa: E402
    LOCK_ARG_SPEC,
    held_for_engine,
)


def argument_spec() -> dict:
    return k8s_argument_spec(
        namespace=dict(type="str", required=True),
        deployment=dict(type="dict", required=True),
        service=dict(type="dict"),
        version=dict(type="str", required=True),
        previous_version=dict(type="str"),
        actor=dict(type="str", required=True),
        lock=LOCK_ARG_SPEC,
        api_outage_tolerance=dict(type="float", default=60),
        pre_empts=dict(type="str"),
        freeze_override=dict(type="str"),
        committed=dict(type="str"),
        restores=dict(type="bool", default=False),
        contract_migrations=dict(type="list", elements="str", default=[]),
        strategy=dict(type="str", choices=["rolling", "blue_green", "canary"], default="rolling"),
        canary_steps=dict(type="list", elements="dict", default=[]),
        canary_pause=dict(type="float", default=0),
        auto_rollback=dict(type="bool", default=True),
        poll_interval=dict(type="float", default=0.25),
        progress_file=dict(type="str"),
        http_smoke=dict(type="dict", options=dict(url=dict(type="str"), path=dict(type="str"),
                                                  port=dict(type="str", default="http"),
                                                  expect_status=dict(type="int", default=200))),
        prometheus=dict(type="dict", options=dict(url=dict(type="str"),
                                                  service=dict(type="dict", options=dict(
                                                      namespace=dict(type="str", required=True),
                                                      name=dict(type="str", required=True),
                                                      port=dict(type="str", required=True))),
                                                  queries=dict(type="list", elements="dict", default=[]),
                                                  no_data_timeout=dict(type="float", default=180))),
        judge=dict(type="dict", options=dict(metrics=dict(type="list", elements="dict", required=True),
                                             interval=dict(type="float", default=10),
                                             max_analysis=dict(type="float", default=600),
                                             alpha=dict(type="float", default=0.001),
                                             pass_score=dict(type="float", default=95),
                                             marginal_score=dict(type="float", default=75),
                                             inconclusive=dict(type="str", choices=["abort", "promote"],
                                                               default="abort"))),
    )


def validate(params: dict) -> str | None:
    deployment = params["deployment"]
    if deployment.get("kind") != "Deployment" or not (deployment.get("metadata") or {}).get("name"):
        return f"deployment must be a named apps/v1 Deployment manifest, got kind={deployment.get('kind')!r}"
    if (deployment["metadata"].get("namespace") or params["namespace"]) != params["namespace"]:
        return (f"deployment namespace {deployment['metadata']['namespace']!r} differs from "
                f"namespace={params['namespace']!r}")
    if params.get("committed") and not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", params["committed"]):
        return f"committed must be a UTC time like 2026-12-06T09:30:00Z, got {params['committed']!r}"
    if params.get("strategy") == "canary" and not params.get("canary_steps"):
        return "strategy=canary needs canary_steps (the canary_steps filter turns percentages into them)"
    if params.get("judge"):
        prom = params.get("prometheus") or {}
        if params.get("strategy") not in ("canary", "blue_green"):
            return (f"judge decides canary and blue-green releases (strategy=canary or blue_green), not "
                    f"strategy={params.get('strategy')}")
        if not (prom.get("url") or prom.get("service")):
            return "judge reads the canary and its baseline from Prometheus: it needs prometheus.url or .service"
        problem = config_problem(params["judge"])
        if problem:
            return problem
    for check in (params.get("prometheus") or {}).get("queries") or []:
        missing = {"name", "query", "max"} - set(check)
        if missing:
            return f"prometheus query {check!r} lacks {', '.join(sorted(missing))}"
    return None


@contextlib.contextmanager
def progress_writer(path: str | None):
    """A reporter that appends each message, time-stamped, to the progress file (flushed at once: the action
    plugin prints the lines while the release runs); without a file, one that says nothing."""
    if not path:
        yield lambda message: None
        return
    with open(path, "a", encoding="utf-8") as stream:
        def report(message: str) -> None:
            stream.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            stream.flush()
        yield report


def main() -> None:
    def body(module, client):
        problem = validate(module.params)
        if problem:
            raise OperatorError(problem)
        params = dict(module.params)
        for manifest in (params["deployment"], params.get("service")):
            if manifest:
                manifest.setdefault("metadata", {})["namespace"] = params["namespace"]
        strategy = {"rolling": RollingRelease, "blue_green": BlueGreenRelease, "canary": CanaryRelease}[
            params["strategy"]]
        with progress_writer(None if module.check_mode else params.get("progress_file")) as progress:
            params["_progress"] = progress
            api, sleep = held_for_engine(ClusterApi(client.client, dry_run=module.check_mode), client.client.client,
                                         params["namespace"], params.get("lock"), module.check_mode)
            api = Resilient(api, f"the release of {params['version']}", params["api_outage_tolerance"], sleep=sleep)
            ledger = api.ledger(params["namespace"], params["deployment"]["metadata"]["name"])
            refuse_an_earlier_release_past_a_contract(ledger, image_of(params["deployment"]), params["version"])
            return strategy(api, params, sleep=sleep).run(check_mode=module.check_mode)

    run_module(argument_spec(), body, "Release")


if __name__ == "__main__":
    main()
