# -*- test-case-name: dockerpy.test.test_network -*-
"""Container networking: the default ``bridge`` network.

- :mod:`dockerpy.network.ipam`: subnet choice and address allocation (pure,
  persisted atomically under ``<data-root>/network/``);
- :mod:`dockerpy.network.ports`: published ports (``-p``/``-P``) as data;
- :mod:`dockerpy.network.nft`: our own nftables table (NAT, DNAT);
- :mod:`dockerpy.network.netlink`: bridge, veth and netns through pyroute2
  (blocking; only ever called on the network service's single thread);
- :mod:`dockerpy.network.service`: :class:`NetworkService`, what the daemon,
  the container service and the API call.
"""
