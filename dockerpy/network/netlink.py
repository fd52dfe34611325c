# -*- test-case-name: dockerpy.test.test_integration_network -*-
"""Blocking kernel work of the bridge network through pyroute2: the bridge,
one named network namespace and one veth pair per container, sysctls.

Every function here runs on the network service's single dedicated thread
(pyroute2 keeps its netlink socket and asyncio loop per thread, and
bridge/IPAM changes must be serialised).  That thread alone steps into
containers' namespaces (:mod:`dockerpy.network.netns`) and always back.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.util
import ipaddress
import json
import os
import sys

from dockerpy import atomic, errors
from dockerpy.network import netns
from dockerpy.network.ipam import IPv4Net, choose_subnet

#: Host-wide: serialises subnet choice between daemons started side by side,
#: and guards the shared ip_forward bookkeeping.
HOST_LOCK = "/run/dockerpy-network.lock"
FORWARD_STATE = "/run/dockerpy-ip-forward.json"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


@contextlib.contextmanager
def host_lock(path: str = HOST_LOCK):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _iproute_class() -> type:
    """pyroute2's ``IPRoute``, imported without the package's ``__init__``.

    ``import pyroute2`` imports every netlink family it knows, NDB and
    sqlite3: ~190 modules and ~7 MB resident in the daemon, which uses
    ``IPRoute`` alone (~120 modules, ~2.4 MB).  When nothing imported the
    package yet, it is registered unexecuted, with a module ``__getattr__``
    that imports a submodule asked for by name and runs the real
    ``__init__`` the first time a name from it is asked for, so
    ``from pyroute2 import NDB`` elsewhere still works.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        package = importlib.util.module_from_spec(spec)

        def complete(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            if importlib.util.find_spec(f"pyroute2.{name}") is not None:
                return importlib.import_module(f"pyroute2.{name}")
            del package.__getattr__
            spec.loader.exec_module(package)
            return getattr(package, name)

        package.__getattr__ = complete
        sys.modules["pyroute2"] = package
    from pyroute2.iproute.linux import IPRoute

    return IPRoute


def open_iproute():
    return _iproute_class()()


def _link_index(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def host_networks(ipr, exclude_index: int | None = None) -> list[IPv4Net]:
    """Every IPv4 network routed or addressed on the host (but the default route)."""
    nets = []
    for r in ipr.route("dump", family=2):
        if r.get("oif") == exclude_index and exclude_index is not None:
            continue
        dst, plen = r.get("dst"), r.get("dst_len")
        if dst and plen:
            nets.append(IPv4Net(f"{dst}/{plen}", strict=False))
    for a in ipr.addr("dump", family=2):
        if a.get("index") == exclude_index and exclude_index is not None:
            continue
        nets.append(IPv4Net(f"{a.get('address')}/{a.get('prefixlen')}", strict=False))
    return nets


def _bridge_ipv4(ipr, index: int) -> ipaddress.IPv4Interface | None:
    for a in ipr.addr("dump", family=2, index=index):
        return ipaddress.IPv4Interface(f"{a.get('address')}/{a.get('prefixlen')}")
    return None


def write_sysctl(name: str, value: str) -> None:
    with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
        f.write(value)


def ensure_bridge(ipr, name: str, bip: tuple[ipaddress.IPv4Address, IPv4Net] | None,
                  preferred: IPv4Net | None) -> tuple[ipaddress.IPv4Address, IPv4Net, bool]:
    """Make the bridge ``name`` exist, up, with its gateway address.

    An existing bridge keeps its address (as dockerd does with ``--bridge``),
    unless ``bip`` asks for another.  Otherwise the subnet is ``bip`` or the
    first default pool that overlaps nothing on the host.

    :return: (gateway, subnet, whether we created the bridge).
    """
    with host_lock():
        index = _link_index(ipr, name)
        created = False
        if index is None:
            ipr.link("add", ifname=name, kind="bridge")
            index = _link_index(ipr, name)
            created = True
        try:
            current = _bridge_ipv4(ipr, index)
            if bip is not None and current is not None and \
                    (current.ip, current.network) != bip:
                ipr.addr("del", index=index, address=str(current.ip),
                         prefixlen=current.network.prefixlen)
                current = None
            if current is None:
                if bip is not None:
                    gateway, subnet = bip
                else:
                    subnet = choose_subnet(host_networks(ipr, exclude_index=index), preferred)
                    gateway = next(subnet.hosts())
                ipr.addr("add", index=index, address=str(gateway), prefixlen=subnet.prefixlen)
            else:
                gateway, subnet = current.ip, current.network
            ipr.link("set", index=index, state="up")
        except BaseException:
            if created:
                ipr.link("del", index=index)
            raise
    # Host traffic to 127.0.0.1:<published port> is DNATed onto the bridge;
    # the kernel drops 127/8 sources on a link unless this is set.
    try:
        write_sysctl(f"net.ipv4.conf.{name}.route_localnet", "1")
    except OSError:
        pass
    return gateway, subnet, created


def delete_link(ipr, name: str) -> None:
    index = _link_index(ipr, name)
    if index is not None:
        try:
            ipr.link("del", index=index)
        except Exception:
            if _link_index(ipr, name) is not None:
                raise


def create_sandbox(netns_path: str) -> None:
    """A network namespace at ``netns_path`` with its loopback up."""
    with netns.created(netns_path), open_iproute() as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


def add_interface(ipr, bridge: str, netns_path: str, veth: str, ifname: str,
                  address: ipaddress.IPv4Address, subnet: IPv4Net,
                  gateway: ipaddress.IPv4Address | None, mac: str) -> None:
    """Put ``ifname`` (``address``, ``mac``; a default route via ``gateway``
    unless it is ``None``) in the namespace, its host end ``veth`` on
    ``bridge``.  Undoes what it made when a step fails."""
    add_veth(ipr, bridge, netns_path, veth, ifname)
    try:
        configure_interface(netns_path, ifname, address, subnet, gateway, mac)
    except netns.PoisonedThread:
        raise
    except BaseException:
        delete_link(ipr, veth)
        raise


def add_veth(ipr, bridge: str, netns_path: str, veth: str, ifname: str) -> None:
    """A veth pair: ``ifname`` (down, no address) in the namespace, ``veth``
    up on ``bridge``."""
    bridge_index = _link_index(ipr, bridge)
    if bridge_index is None:
        raise errors.SystemError_(f"bridge {bridge} is gone")
    # The peer is born inside the namespace, so it can have its name at once.
    ipr.link("add", ifname=veth, kind="veth",
             peer={"ifname": ifname, "net_ns_fd": netns_path})
    try:
        ipr.link("set", index=_link_index(ipr, veth), master=bridge_index, state="up")
    except BaseException:
        delete_link(ipr, veth)
        raise


def configure_interface(netns_path: str, ifname: str, address: ipaddress.IPv4Address,
                        subnet: IPv4Net, gateway: ipaddress.IPv4Address | None,
                        mac: str) -> None:
    """Give ``ifname`` in the namespace its MAC and address, bring it up, and
    route through ``gateway`` (unless ``None``)."""
    with netns.entered(netns_path), open_iproute() as ns:
        index = ns.link_lookup(ifname=ifname)[0]
        ns.link("set", index=index, address=mac)
        ns.addr("add", index=index, address=str(address), prefixlen=subnet.prefixlen)
        ns.link("set", index=index, state="up")
        if gateway is not None:
            ns.route("add", dst="0.0.0.0/0", gateway=str(gateway))


def remove_netns(path: str) -> None:
    netns.remove(path)


def remove_stale(ipr, netns_dir: str, veth_prefix: str) -> list[str]:
    """Start-up and shutdown sweep: every namespace file under ``netns_dir``
    and every link named ``veth_prefix...``.  Called when none of this
    daemon's containers runs.  :return: what was removed."""
    removed = []
    try:
        names = os.listdir(netns_dir)
    except FileNotFoundError:
        names = []
    for name in names:
        remove_netns(os.path.join(netns_dir, name))
        removed.append("netns " + name)
    for link in ipr.get_links():
        name = link.get("ifname") or ""
        if name.startswith(veth_prefix):
            delete_link(ipr, name)
            removed.append("veth " + name)
    return removed


def unmount_netns_dir(netns_dir: str) -> None:
    """Remove the namespace directory at start and stop.  Daemons that made
    namespaces with pyroute2 (like ``ip netns``) left it a bind mount of
    itself, stacked once per restart after a crash: undo those first."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    while os.path.isdir(netns_dir) and libc.umount2(netns_dir.encode(), 2) == 0:
        pass  # MNT_DETACH; it may be stacked once per restart after a crash
    try:
        os.rmdir(netns_dir)
    except OSError:
        pass


# -- ip_forward, shared by every daemon on the host ---------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_forward_state(path: str) -> dict:
    try:
        return atomic.read_json(path)
    except (OSError, ValueError):
        return {}


def acquire_ip_forward(key: str, pid: int, path: str = FORWARD_STATE,
                       sysctl: str = IP_FORWARD, lock: str = HOST_LOCK) -> None:
    """Turn IPv4 forwarding on, remembering the value it had before the first
    daemon that needed it, so the last one to stop can put it back."""
    with host_lock(lock):
        state = _read_forward_state(path)
        users = {k: p for k, p in (state.get("users") or {}).items()
                 if k != key and _pid_alive(int(p))}
        with open(sysctl) as f:
            current = f.read().strip()
        # A state file left by daemons that died still holds the true original.
        original = state.get("original", current)
        users[key] = pid
        atomic.write_bytes(path, json.dumps({"original": original, "users": users}).encode(),
                           0o600)
        if current != "1":
            with open(sysctl, "w") as f:
                f.write("1")


def release_ip_forward(key: str, path: str = FORWARD_STATE, sysctl: str = IP_FORWARD,
                       lock: str = HOST_LOCK) -> None:
    with host_lock(lock):
        state = _read_forward_state(path)
        if not state:
            return
        users = {k: p for k, p in (state.get("users") or {}).items()
                 if k != key and _pid_alive(int(p))}
        if users:
            atomic.write_bytes(path, json.dumps(dict(state, users=users)).encode(), 0o600)
            return
        original = state.get("original")
        if original is not None:
            with open(sysctl, "w") as f:
                f.write(str(original))
        os.unlink(path)
