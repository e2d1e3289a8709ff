"""Unit tests of the migration_job filter (plugins/filter/release.py): the Job is the release's pod, minus serving."""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from helpers import load_plugin

F = load_plugin("plugins/filter/release.py").FilterModule().filters()

DEPLOYMENT = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: colors
  namespace: colors
  labels: {app.kubernetes.io/name: colors, app.kubernetes.io/part-of: colors, app.kubernetes.io/version: 1.4.0-RC.1}
spec:
  template:
    metadata:
      labels: {app.kubernetes.io/name: colors, app.kubernetes.io/part-of: colors, app.kubernetes.io/version: 1.4.0-RC.1}
      annotations: {colors.io/secrets-checksum: abc}
    spec:
      terminationGracePeriodSeconds: 35
      nodeSelector: {colors.io/node: real}
      tolerations: [{key: colors.io/workload, value: app, effect: NoSchedule}]
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      containers:
        - name: colors
          image: registry/colors:1.4.0-RC.1
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          livenessProbe: {httpGet: {path: /healthz, port: http}}
          env:
            - {name: COLORS_STORE, value: postgres}
            - {name: COLORS_DATABASE_URL_FILE, value: /run/secrets/colors/database_url}
          volumeMounts: [{name: secrets, mountPath: /run/secrets/colors, readOnly: true}]
      volumes: [{name: secrets, secret: {secretName: colors-app}}]
""")


def test_the_job_runs_migrate_in_the_releases_pod_without_serving():
    job = F["migration_job"](DEPLOYMENT, "colors-migrate-1.4.0-RC.1+build.7", backoff_limit=1, deadline_seconds=120)
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == "colors"
    assert job["metadata"]["name"] == "colors-migrate-1.4.0-rc.1-build.7"
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 120
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["migrate"] and container["image"] == "registry/colors:1.4.0-RC.1"
    assert container["env"] == DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["env"]
    assert container["volumeMounts"]
    assert pod["volumes"][0]["secret"]["secretName"] == "colors-app"  # pragma: allowlist secret
    assert not {"ports", "readinessProbe", "livenessProbe"} & set(container)
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["restartPolicy"] == "Never" and "terminationGracePeriodSeconds" not in pod
    assert pod["nodeSelector"] and pod["tolerations"] and pod["securityContext"]["runAsNonRoot"]
    # The Deployment it came from is untouched.
    assert DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]


def test_no_selector_of_the_app_matches_the_migration_pods():
    labels = F["migration_job"](DEPLOYMENT, "colors-migrate-1")["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/name": "colors-migrate", "app.kubernetes.io/component": "migration",
                      "app.kubernetes.io/part-of": "colors", "app.kubernetes.io/version": "1.4.0-RC.1"}


def test_a_long_name_is_cut_to_the_job_name_label_length():
    name = F["migration_job"](DEPLOYMENT, "colors-migrate-" + "9" * 80)["metadata"]["name"]
    assert len(name) == 63 and name.startswith("colors-migrate-")


def test_each_attempt_gets_a_name_of_its_own_from_the_api_server():
    metadata = F["migration_job"](DEPLOYMENT, "colors-migrate-" + "9" * 80 + "-", generate=True)["metadata"]
    assert "name" not in metadata and len(metadata["generateName"]) == 58
    assert metadata["generateName"].endswith("9-")


@pytest.mark.parametrize(("deployment", "name", "quoted"), [
    ({"kind": "Deployment"}, "colors-migrate-1", "'kind'"),
    ({"metadata": {}, "spec": {"template": {"spec": {"containers": []}}}}, "colors-migrate-1", "containers"),
    (DEPLOYMENT, "+++", "'+++'"),
])
def test_bad_input_is_refused_quoting_it(deployment, name, quoted):
    with pytest.raises(AnsibleFilterError) as err:
        F["migration_job"](deployment, name)
    assert quoted in str(err.value)
