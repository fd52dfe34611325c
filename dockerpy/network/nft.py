# -*- test-case-name: dockerpy.test.test_network -*-
"""The daemon's own nftables table (``ip dockerpy-<key>``): masquerade for
the bridge subnet, DNAT for published ports, from outside and from the host
itself (127.0.0.1 and the host's addresses).

Scripts are built as text (pure, tested without root) and applied with
``nft -f -``, each in one transaction.  We never touch another table, so the
administrator's rules are neither flushed nor reordered.
"""

from __future__ import annotations

import subprocess
from typing import Iterable

from dockerpy import errors
from dockerpy.network.ports import PortMapping

NFT = "nft"


def table_name(key: str) -> str:
    return f"dockerpy-{key}"


def table_script(table: str, networks: Iterable[tuple[str, str, bool]],
                 endpoints: Iterable[tuple[str, list[PortMapping]]] = ()) -> str:
    """(Re)create our table for ``networks`` ((bridge, subnet, internal)
    triples) with the DNAT rules of ``endpoints``: any stale copy goes first,
    in the same transaction, so a crash leaves nothing a restart does not
    replace.

    Like Docker's isolation chains, traffic between two of our bridges is
    dropped, and an internal network's traffic never leaves its bridge.
    """
    networks = list(networks)
    masquerade, forward = [], []
    bridges = [b for b, _, _ in networks]
    for bridge, subnet, internal in networks:
        if not internal:
            masquerade.append(f'    ip saddr {subnet} oifname != "{bridge}" masquerade')
        masquerade += [f'    oifname "{bridge}" ip saddr 127.0.0.0/8 masquerade',
                       f'    oifname "{bridge}" ip saddr {subnet} ct status dnat masquerade']
        others = [f'"{b}"' for b in bridges if b != bridge]
        if internal:
            forward += [f'    iifname "{bridge}" oifname != "{bridge}" drop',
                        f'    oifname "{bridge}" iifname != "{bridge}" drop']
        elif others:
            forward.append(f'    iifname "{bridge}" oifname {{ {", ".join(others)} }} drop')
    nl = "\n"
    script = f"""table ip {table}
delete table ip {table}
table ip {table} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump ports
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    fib daddr type local jump ports
  }}
  chain ports {{
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
{nl.join(masquerade)}
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
{nl.join(forward)}
  }}
}}
"""
    rules = [dnat_rule(table, ip, m) for ip, mappings in endpoints for m in mappings]
    return script + "".join(r + "\n" for r in rules)


def delete_script(table: str) -> str:
    # "table" first: deleting a table that does not exist is an error.
    return f"table ip {table}\ndelete table ip {table}\n"


def dnat_rule(table: str, container_ip: str, m: PortMapping) -> str:
    match = "" if m.host_ip == "0.0.0.0" else f"ip daddr {m.host_ip} "
    return (f"add rule ip {table} ports {match}{m.proto} dport {m.host_port} "
            f"dnat to {container_ip}:{m.container_port}")


def ports_script(table: str, endpoints: Iterable[tuple[str, list[PortMapping]]]) -> str:
    """Replace every DNAT rule at once: (container address, mappings) pairs."""
    lines = [f"flush chain ip {table} ports"]
    for ip, mappings in endpoints:
        lines += [dnat_rule(table, ip, m) for m in mappings]
    return "\n".join(lines) + "\n"


def apply(script: str) -> None:
    """Blocking: run ``script`` through ``nft -f -``.

    :raises SystemError_: nft refused it.
    """
    try:
        r = subprocess.run([NFT, "-f", "-"], input=script.encode(), capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise errors.SystemError_(f"nft failed: {e}") from None
    if r.returncode != 0:
        raise errors.SystemError_(
            f"nft failed: {r.stderr.decode(errors='replace').strip()}")


def table_exists(table: str) -> bool:
    r = subprocess.run([NFT, "list", "table", "ip", table], capture_output=True, timeout=30)
    return r.returncode == 0
