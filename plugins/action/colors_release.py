"""Action plugin of colors.deploy.colors_release: runs the module as usual and, while it runs, prints the release's
progress as it goes (each step, the rollout's state when it changes and every 10 s, the gates, a rollback), read
from the progress file the module appends to. The deployer host is the controller (connection local), so the
controller reads the file the module writes; on any other connection the module runs without live progress."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def follow(path: str, stop: threading.Event, say, every: float = 0.5) -> None:
    """Call say() with each line appended to the file until stop is set and every line written was read."""
    with open(path, encoding="utf-8") as stream:
        while True:
            line = stream.readline()
            if line:
                say(line.rstrip("\n"))
            elif stop.is_set():
                return
            else:
                time.sleep(every)


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        live = (self._connection.transport == "local" and not args.get("progress_file")
                and not self._task.check_mode)
        if not live:
            result.update(self._execute_module(module_name="colors.deploy.colors_release", module_args=args,
                                               task_vars=task_vars))
            return result
        fd, path = tempfile.mkstemp(prefix="colors-release-progress-", suffix=".log")
        os.close(fd)
        stop = threading.Event()
        reader = threading.Thread(target=follow, args=(path, stop, lambda line: display.display(f"  [release] {line}")),
                                  daemon=True)
        reader.start()
        try:
            result.update(self._execute_module(module_name="colors.deploy.colors_release",
                                               module_args={**args, "progress_file": path}, task_vars=task_vars))
        finally:
            stop.set()
            reader.join(timeout=5)
            with contextlib.suppress(OSError):
                os.unlink(path)
        return result
