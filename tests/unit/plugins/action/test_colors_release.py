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


class _StopAsTheWriterFinishes(threading.Event):
    """A stop event set by a writer that appends its last text when follow() looks at it for the `at`-th time: at=1
    is the interleaving in which follow() has just found the end of the file and then finds stop set."""

    def __init__(self, path, last_text, at=1):
        super().__init__()
        self.path, self.last_text, self.calls, self.at = path, last_text, 0, at

    def is_set(self):
        self.calls += 1
        if self.calls == self.at:
            with open(self.path, "a") as stream:
                stream.write(self.last_text)
            self.set()
        return super().is_set()


def test_the_lines_written_just_before_stop_are_printed(tmp_path):
    """The race a loaded CI machine hit: every line written before stop is printed, the verdict included."""
    path = tmp_path / "progress.log"
    path.write_text("12:00:00 rolling colors\n")
    said: list[str] = []
    stop = _StopAsTheWriterFinishes(path, "12:00:01 colors: rollout healthy after 1s\n12:00:01 colors: gates healthy\n")
    action.follow(str(path), stop, said.append, every=0.01)
    assert said == ["12:00:00 rolling colors", "12:00:01 colors: rollout healthy after 1s",
                    "12:00:01 colors: gates healthy"]


def test_a_line_read_before_its_end_was_written_is_printed_whole(tmp_path):
    path = tmp_path / "progress.log"
    path.write_text("12:00:02 colors: 1 updated")  # follow() reads this half first
    said: list[str] = []
    stop = _StopAsTheWriterFinishes(path, ", 0 ready of 2 (1s)\n", at=2)
    action.follow(str(path), stop, said.append, every=0.01)
    assert said == ["12:00:02 colors: 1 updated, 0 ready of 2 (1s)"]
