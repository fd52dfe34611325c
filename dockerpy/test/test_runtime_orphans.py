"""A subreaper daemon reaps the orphans it inherits, but not container inits."""

import json
import os
import shutil
import subprocess
import sys
import time

from twisted.internet import process as twisted_process
from twisted.trial.unittest import SkipTest, TestCase

from dockerpy.runtime import orphans

# Run in a fresh interpreter that is a child subreaper: an orphan (a shell's
# background job) and an orphaned pid-1 of a new pid namespace (its
# `unshare --fork` parent killed) both become its zombie children; one sweep
# must reap the first only.
_SCRIPT = r"""
import ctypes, json, os, signal, subprocess, sys, time
from dockerpy.runtime import orphans

assert ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0

def zombies():
    out = {}
    for pid in orphans._children(os.getpid()):
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
        if "State:\tZ" in text:
            out[pid] = [l for l in text.splitlines() if l.startswith("NSpid:")][0]
    return out

subprocess.run(["sh", "-c", "sleep 0.05 & exit 0"], check=True)
u = subprocess.Popen(["unshare", "--pid", "--fork", "sleep", "0.05"])
time.sleep(0.02)
u.kill()
u.wait()
deadline = time.monotonic() + 10
while len(zombies()) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
before = zombies()
reaped = orphans.sweep(handlers={})
after = zombies()
for pid in after:
    os.waitpid(pid, 0)
print(json.dumps({"before": before, "reaped": reaped, "after": after}))
"""


class SweepTests(TestCase):

    def test_reaps_orphans_but_leaves_container_inits(self):
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            raise SkipTest("needs root and unshare")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                             cwd=root, timeout=60, env={**os.environ, "PYTHONPATH": root})
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual(len(result["before"]), 2, result)
        inits = [pid for pid, nspid in result["before"].items() if nspid.split()[-1] == "1"]
        self.assertEqual(len(inits), 1, result)
        self.assertEqual(list(result["after"]), inits)
        self.assertEqual([str(p) for p in result["reaped"]],
                         [p for p in result["before"] if p not in inits])

    def test_registered_children_are_left_to_their_reapers(self):
        child = subprocess.Popen(["true"])
        try:
            deadline = time.monotonic() + 10
            while not orphans._zombie_not_init(child.pid) and time.monotonic() < deadline:
                time.sleep(0.005)
            self.assertTrue(orphans._zombie_not_init(child.pid))
            self.assertEqual(orphans.sweep(handlers={child.pid: object()}), [])
            self.assertTrue(orphans._zombie_not_init(child.pid), "still there for its owner")
        finally:
            child.wait()

    def test_install_adds_one_sweeper(self):
        self.addCleanup(twisted_process.reapProcessHandlers.pop, orphans.KEY, None)
        orphans.install()
        first = twisted_process.reapProcessHandlers[orphans.KEY]
        orphans.install()
        self.assertIs(twisted_process.reapProcessHandlers[orphans.KEY], first)
        twisted_process.reapAllProcesses()  # the sweeper is callable as a process
