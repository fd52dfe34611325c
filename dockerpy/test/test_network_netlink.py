"""How the network code loads pyroute2 (``dockerpy.network.netlink``).

In a fresh interpreter: trial's own process may have imported pyroute2
whole already, where the lean import rightly does nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

_CODE = """
import json, sys
from dockerpy.network import netlink
with netlink.open_iproute() as ipr:
    names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
heavy = sorted(m for m in sys.modules
               if m.startswith(("pyroute2.ndb", "pyroute2.ipdb", "pyroute2.nftables", "sqlite3")))
from pyroute2 import NDB, IPRoute
import pyroute2
print(json.dumps({"lo": "lo" in names, "heavy": heavy, "ndb": NDB.__name__,
                  "same": IPRoute is netlink._iproute_class(),
                  "version": isinstance(pyroute2.__version__, str)}))
"""


class LeanImportTests(SynchronousTestCase):
    def test_iproute_comes_without_the_rest_of_pyroute2_which_still_imports_on_demand(self):
        out = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, timeout=120,
                             check=False)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        self.assertEqual(json.loads(out.stdout.decode().splitlines()[-1]),
                         {"lo": True, "heavy": [], "ndb": "NDB", "same": True, "version": True})
