#!/usr/bin/env python3
"""Build, start, stop and check the local platform: the project's embedded default target.

The command line of the colors_platform package beside this file (its parts: colors_platform/__init__.py):
  python localplatform/platformctl.py {up,down,status,build,env,terraformrc,load-images} ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colors_platform.cli import main

if __name__ == "__main__":
    sys.exit(main())
