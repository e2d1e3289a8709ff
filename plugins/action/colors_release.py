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
    """Call say() with each line appended to the file until stop is set and every line written was read.

    stop is read before each read of the file: once it is set, the writer has finished, so reading on to the end
    of the file reads all it wrote. (Read after an empty read instead, stop may have been set in between, by a
    writer whose last lines - the release's verdict - were then never printed.) A line read before the writer
    ended it is held until its end arrives."""
    pending = ""
    with open(path, encoding="utf-8") as stream:
        while True:
            finished = stop.is_set()
            chunk = stream.readline()
            if chunk.endswith("\n"):
                say((pending + chunk).rstrip("\n"))
                pending = ""
            elif chunk:
                pending += chunk
            elif finished:
                if pending:
                    say(pending)
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
