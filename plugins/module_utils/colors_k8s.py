"""What every Colors Kubernetes module shares: kubernetes.core's auth options and client, and one way of
turning the API's and the engine's failures into messages a person can act on."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by run_module()
    AUTH_ARG_SPEC: dict = {}
    IMPORT_ERROR = traceback.format_exc()


class OperatorError(Exception):
    """A failure whose message says what is wrong and what to do; `result` goes into the task result."""

    def __init__(self, message: str, result: dict[str, Any] | None = None):
        super().__init__(message)
        self.result = result or {}


def argument_spec(**own: dict) -> dict:
    """kubernetes.core's authentication options (kubeconfig, context, K8S_AUTH_* ...) plus the module's own."""
    spec = dict(AUTH_ARG_SPEC)
    spec.update(own)
    return spec


def run_module(spec: dict, body: Callable[[Any, Any], dict], what: str, **module_kwargs: Any) -> None:
    """Run `body(module, client)` with check mode support and exit with its result or an actionable failure."""
    if IMPORT_ERROR:
        from ansible.module_utils.basic import AnsibleModule, missing_required_lib

        AnsibleModule(argument_spec={}).fail_json(msg=missing_required_lib("kubernetes.core"), exception=IMPORT_ERROR)
    module = AnsibleK8SModule(argument_spec=spec, supports_check_mode=True, **module_kwargs)
    try:
        module.exit_json(**body(module, get_api_client(module=module)))
    except OperatorError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except CoreException as exc:
        module.fail_json(msg=f"Could not reach the Kubernetes API: {exc}")
    except Exception as exc:  # the API's own answer (403, 409, 422 ...) is the most useful message
        module.fail_json(msg=api_failure(what, exc), exception=traceback.format_exc())


GRANTS = ("A cluster administrator grants it: the deployer Role of roles/cluster_bootstrap (rbac.yml.j2), applied by "
          "bootstrap.yml.")


def api_failure(what: str, exc: Exception) -> str:
    """One line for a failure the API server answered: a refusal (403) names the identity, the verb, the resource and
    who grants it (the API server's own message says the first three); others keep the server's reason and body."""
    import json

    reason = getattr(exc, "reason", None) or str(exc)
    body = getattr(exc, "body", "") or ""
    if getattr(exc, "status", None) == 403:
        try:
            message = json.loads(body).get("message") or reason
        except (TypeError, ValueError):
            message = f"{reason} {body}".strip()
        return f"{what}: refused by the Kubernetes API: {message}. {GRANTS}"
    return f"{what}: {reason} {body}".strip()
