"""dockerpy: a Docker-compatible container engine on Twisted.

This package's ``__init__`` must stay import-free: ``bin/docker`` imports
``dockerpy.client`` and must not pay for Twisted.
"""

__version__ = "0.1.0"
