"""Documentation shared by the modules of colors.deploy (extends_documentation_fragment: colors.deploy.common)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
author:
  - Colors platform team
notes:
  - Part of the in-repo collection colors.deploy (the project's plugins/), unit tested against an in-memory fake of
    the API it drives (tests/unit/plugins/).
attributes:
  diff_mode:
    support: none
    details: The module reports no diff.
  platform:
    platforms: posix
"""

    # extends_documentation_fragment: colors.deploy.common.lock - the modules that change what serves: the release
    # lock they hold, and the API server outages they ride out.
    LOCK = r"""
options:
  api_outage_tolerance:
    description:
      - Seconds the run's reads of the cluster ride out a Kubernetes API server that does not answer (a restart, a
        control-plane upgrade, a broken connection) or answers 5xx, asking again with back-off.
      - A read refused (403) that the run was allowed before is asked again within the same time - an API server
        just started answers before its authorizer has loaded the grants; past it, the refusal is the failure.
      - Past it, or when a change cannot be sent, the run fails in one line - the API server stopped answering
        during the release, what is unknown, and that running the same command again converges - and writes
        nothing more.
    type: float
    default: 60
  lock:
    description:
      - The release lock this run took (M(colors.deploy.colors_release_lock)), held for the run while it goes on -
        renewed at a third of I(lock.duration) while it waits, and before each change it makes, which goes ahead
        only while the Lease still names I(lock.holder).
      - A run whose lock was taken from it (a person pre-empted it, or it stalled past the lease and another run
        took over) changes nothing more, records nothing, and fails naming the lock's new holder.
      - Not given, or in check mode - no lock is held for the run.
    type: dict
    suboptions:
      holder:
        description: The holder identity the lock was taken with.
        type: str
        required: true
      name:
        description: The Lease the lock was taken as (M(colors.deploy.colors_release_lock)'s I(name)).
        type: str
        default: colors-release
      duration:
        description: Seconds the Lease stays valid after each renewal (as it was taken with).
        type: int
        default: 60
"""
