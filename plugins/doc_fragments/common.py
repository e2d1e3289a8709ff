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
