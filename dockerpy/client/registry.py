# -*- test-case-name: dockerpy.test.test_registry_client -*-
"""``docker pull``, ``push``, ``login`` and ``logout``.

Owns the client side of registry credentials: ``config.json`` in
``$DOCKER_CONFIG`` (default ``~/.docker``) with ``auths`` entries holding
``base64(user:password)``, as the docker CLI writes them, and the
``X-Registry-Auth`` header built from them.  Progress is printed a line per
message, as the docker CLI does when its output is not a terminal.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile

from dockerpy.client.command import Cli, Parser, StatusError, normalize_name, split_repo_tag

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any

INDEX_SERVER = "https://index.docker.io/v1/"


def config_path(cli: Cli) -> str:
    directory = cli.environ.get("DOCKER_CONFIG") or os.path.join(
        cli.environ.get("HOME") or os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _load_config(cli: Cli) -> dict:
    try:
        with open(config_path(cli), "rb") as f:
            obj = json.loads(f.read() or b"{}")
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise StatusError(1, f"loading config file: {config_path(cli)}: {e}")
    return obj if isinstance(obj, dict) else {}


def _save_config(cli: Cli, obj: dict) -> None:
    path = config_path(cli)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent="\t")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _server_key(server: str) -> str:
    """The key ``auths`` uses: the index URL for Docker Hub, else the host."""
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if s in ("", "docker.io", "index.docker.io", "registry-1.docker.io"):
        return INDEX_SERVER
    return s


def registry_of(image: str) -> str:
    """The registry host of an image name (``docker.io`` for familiar names)."""
    return normalize_name(split_repo_tag(image)[0].split("@")[0]).split("/", 1)[0]


def auth_header(cli: Cli, server: str) -> str:
    """``X-Registry-Auth`` for *server* from config.json (``{}`` when none)."""
    key = _server_key(server)
    auths = _load_config(cli).get("auths") or {}
    entry: dict[str, Any] = {}
    for name, value in auths.items():
        if _server_key(name) == key and isinstance(value, dict):
            entry = value
            break
    obj: dict[str, str] = {}
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            obj = {"username": user, "password": password}
        except (ValueError, UnicodeDecodeError):
            obj = {}
    if entry.get("identitytoken"):
        obj = {"identitytoken": entry["identitytoken"]}
    if obj:
        obj["serveraddress"] = key
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


def print_progress(cli: Cli, resp: Any, quiet: bool = False) -> None:
    """A line per message; bars (messages with a byte count) are left out, as
    the docker CLI does without a terminal."""
    for msg in resp.json_lines():
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            raise StatusError(1, str(msg.get("error") or detail.get("message", "")))
        if quiet or "status" not in msg:
            continue
        if (msg.get("progressDetail") or {}).get("current") is not None:
            continue
        line = msg["status"]
        if msg.get("id"):
            line = f"{msg['id']}: {line}"
        cli.out(line)


def _with_default_tag(cli: Cli, image: str, quiet: bool = False) -> tuple[str, str]:
    repo, tag = split_repo_tag(image)
    if "@" in repo:
        name, _, digest = repo.partition("@")
        return name, digest
    if not tag:
        if not quiet:
            cli.out("Using default tag: latest")
        tag = "latest"
    return repo, tag


def pull(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry",
               min_args=1, max_args=1)
    p.add("-a", "--all-tags", kind="bool", help="Download all tagged images in the repository")
    p.add("--platform", help="Set platform if server is multi-platform capable")
    p.add("-q", "--quiet", kind="bool", help="Suppress verbose output")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    if ns.all_tags:
        raise StatusError(1, "pulling all tags (-a) is not supported by this client")
    repo, tag = _with_default_tag(cli, ns.args[0], ns.quiet)
    resp = cli.client.request(
        "POST", "/images/create", {"fromImage": repo, "tag": tag, "platform": ns.platform},
        headers={"X-Registry-Auth": auth_header(cli, registry_of(repo))}, stream=True)
    print_progress(cli, resp, ns.quiet)
    full = normalize_name(repo) + ("@" if tag.startswith("sha256:") else ":") + tag
    cli.out(full)
    return 0


def push(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NAME[:TAG]", "Upload an image to a registry",
               min_args=1, max_args=1)
    p.add("-a", "--all-tags", kind="bool", help="Push all tags of an image to the repository")
    p.add("-q", "--quiet", kind="bool", help="Suppress verbose output")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    repo, tag = split_repo_tag(ns.args[0])
    if ns.all_tags:
        if tag:
            raise StatusError(1, "tag can't be used with --all-tags/-a")
    elif not tag:
        cli.out("Using default tag: latest")
        tag = "latest"
    resp = cli.client.request(
        "POST", f"/images/{repo}/push", {"tag": tag or None},
        headers={"X-Registry-Auth": auth_header(cli, registry_of(repo))}, stream=True)
    print_progress(cli, resp, ns.quiet)
    if ns.quiet:
        cli.out(ns.args[0])
    return 0


def login(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] [SERVER]", "Authenticate to a registry", max_args=1)
    p.add("-u", "--username", help="Username")
    p.add("-p", "--password", help="Password or Personal Access Token (PAT)")
    p.add("--password-stdin", kind="bool", help="Take the Password or PAT from stdin")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    server = ns.args[0] if ns.args else INDEX_SERVER
    password = ns.password
    if ns.password_stdin:
        if password:
            raise StatusError(1, "--password and --password-stdin are mutually exclusive")
        if not ns.username:
            raise StatusError(1, "Must provide --username with --password-stdin")
        password = cli.stdin.read().decode().rstrip("\r\n")
    elif password:
        cli.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    if not ns.username or not password:
        raise StatusError(1, "Error: Cannot perform an interactive login from a non TTY device"
                          if not cli.isatty(cli.stdin) else
                          "interactive login is not supported by this client: use -u and "
                          "--password-stdin")
    key = _server_key(server)
    result = cli.client.post_json("/auth", body={
        "username": ns.username, "password": password, "serveraddress": key}) or {}
    config = _load_config(cli)
    entry: dict[str, str] = {}
    if result.get("IdentityToken"):
        entry["identitytoken"] = result["IdentityToken"]
    else:
        entry["auth"] = base64.b64encode(f"{ns.username}:{password}".encode()).decode()
    config.setdefault("auths", {})[key] = entry
    _save_config(cli, config)
    cli.err(f"WARNING! Your credentials are stored unencrypted in '{config_path(cli)}'.\n"
            "Configure a credential helper to remove this warning. See\n"
            "https://docs.docker.com/go/credential-store/\n")
    cli.out(result.get("Status") or "Login Succeeded")
    return 0


def logout(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[SERVER]", "Log out from a registry", max_args=1)
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    key = _server_key(ns.args[0] if ns.args else INDEX_SERVER)
    config = _load_config(cli)
    auths = config.get("auths") or {}
    found = [n for n in auths if _server_key(n) == key]
    if not found:
        cli.out(f"Not logged in to {key}")
        return 0
    cli.out(f"Removing login credentials for {key}")
    for n in found:
        del auths[n]
    _save_config(cli, config)
    return 0
