"""Unit tests of the colors.deploy.colors_release action plugin: the release's progress file is printed line by line
while the module runs, and every line written before the module returned is printed."""

from __future__ import annotations

import threading
import time

from helpers import load_plugin

action = load_plugin("plugins/action/colors_release.py")


def test_follow_prints_each_line_as_it_is_written_and_every_line_before_it_stops(tmp_path):
    path = tmp_path / "progress.log"
    path.write_text("")
    said: list[str] = []
    stop = threading.Event()
    reader = threading.Thread(target=action.follow, args=(str(path), stop, said.append), kwargs={"every": 0.01})
    reader.start()
    with path.open("a") as stream:
        stream.write("12:00:00 rolling colors\n")
        stream.flush()
        deadline = time.monotonic() + 5
        while not said and time.monotonic() < deadline:
            time.sleep(0.01)
        assert said == ["12:00:00 rolling colors"]  # printed while the release still runs
        stream.write("12:00:01 colors: rollout healthy after 1s\n12:00:01 colors: gates healthy\n")
    stop.set()
    reader.join(timeout=5)
    assert said == ["12:00:00 rolling colors", "12:00:01 colors: rollout healthy after 1s",
                                          "12:00:01 colors: gates healthy"]
