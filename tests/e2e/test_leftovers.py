"""What a child forks and leaves behind dies: the supervisor is a child subreaper and sweeps
every process below it but its live children (`supervise.leftovers.sweep`)."""

from __future__ import annotations

import json
import subprocess
import sys

from supervise.leftovers import descendants
from tests.helpers import ROOT

#: A supervisor in miniature: a child that double-forks a daemon (setsid) and one that forks
#: and stays; `sweep` with the first child spared kills the daemon only, then everything.
SCRIPT = """
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from supervise.leftovers import become_subreaper, process_table, sweep
assert become_subreaper()
forker = subprocess.Popen([sys.executable, "-c", '''
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print(os.getpid(), flush=True)
        time.sleep(600)
    os._exit(0)
time.sleep(600)
'''], stdout=subprocess.PIPE, text=True)
daemon = int(forker.stdout.readline())
time.sleep(0.1)
parent_of_daemon = process_table()[daemon][0]
killed_first = sweep({forker.pid})
daemon_after = daemon in process_table()
forker_alive = forker.poll() is None
killed_then = sweep(set())
forker.wait(5)
print(json.dumps({"reparented_to_us": parent_of_daemon == os.getpid(), "killed_first": killed_first,
                  "daemon_after": daemon_after, "forker_alive": forker_alive,
                  "killed_then": killed_then, "left":
                  [p for p, (pp, _) in process_table().items() if pp == os.getpid()]}))
"""


def test_a_daemon_a_child_left_behind_is_killed_and_the_live_child_spared() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["reparented_to_us"]  # setsid and a double fork do not escape a subreaper
    assert out["killed_first"] == 1 and not out["daemon_after"] and out["forker_alive"]
    assert out["killed_then"] >= 1 and out["left"] == []


def test_descendants_walks_the_whole_tree() -> None:
    table = {2: (1, "S"), 3: (2, "S"), 4: (3, "Z"), 5: (1, "S"), 6: (9, "S")}
    assert descendants(1, table) == {2, 3, 4, 5}
    assert descendants(2, table) == {3, 4}
    assert descendants(6, table) == set()
