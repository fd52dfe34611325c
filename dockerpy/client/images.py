# -*- test-case-name: dockerpy.test.test_client_images -*-
"""Image commands: ``images``, ``import``, ``load``, ``save``, ``tag``,
``rmi``, ``history``, ``image inspect`` and ``image prune``."""

from __future__ import annotations

import time

from dockerpy.client.command import (
    Cli, Parser, StatusError, confirm, normalize_name, open_output, parse_filters,
    split_repo_tag, write_stream)
from dockerpy.client.containers import print_listing
from dockerpy.client.format import (
    Context, ellipsis, go_time, human_size, rfc3339, since, truncate_id)
from dockerpy.client.system import inspect_objects
from dockerpy.client.transport import APIError

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any

IMAGE_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}


class ImageContext(Context):
    """One ``images`` row: Docker's ``formatter.imageContext`` fields."""

    FIELDS = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
              "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")

    def __init__(self, image: dict[str, Any], repo: str, tag: str, digest: str,
                 trunc: bool = True, now: float | None = None):
        self.i = image
        self.repo = repo
        self.tag = tag
        self.digest = digest
        self.trunc = trunc
        self.now = now

    def ID(self) -> str:
        return truncate_id(self.i.get("Id", "")) if self.trunc else self.i.get("Id", "")

    def Repository(self) -> str:
        return self.repo

    def Tag(self) -> str:
        return self.tag

    def Digest(self) -> str:
        return self.digest

    def CreatedSince(self) -> str:
        return since(self.i.get("Created", 0), self.now)

    def CreatedAt(self) -> str:
        return go_time(self.i.get("Created", 0))

    def Size(self) -> str:
        return human_size(self.i.get("Size") or 0)

    def VirtualSize(self) -> str:
        return human_size(self.i.get("Size") or 0, 4)

    def Containers(self) -> str:
        n = self.i.get("Containers", -1)
        return "N/A" if n is None or n == -1 else str(n)

    def SharedSize(self) -> str:
        n = self.i.get("SharedSize", -1)
        return "N/A" if n is None or n == -1 else human_size(n)

    def UniqueSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        if shared is None or shared == -1:
            return "N/A"
        return human_size((self.i.get("Size") or 0) - shared)


def image_rows(images: list[dict[str, Any]], trunc: bool, digests: bool,
               now: float | None = None) -> list[ImageContext]:
    """One row per repository:tag, ``<none>`` for untagged (Docker's rules)."""
    rows = []
    for image in images:
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        repo_digests = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
        by_repo_digest = {}
        for d in repo_digests:
            r, _, dig = d.partition("@")
            by_repo_digest.setdefault(r, dig)
        if not tags and not repo_digests:
            rows.append(ImageContext(image, "<none>", "<none>", "<none>", trunc, now))
            continue
        seen = set()
        for t in tags:
            r, tag = split_repo_tag(t)
            seen.add(r)
            rows.append(ImageContext(image, r, tag or "<none>",
                                     by_repo_digest.get(r, "<none>"), trunc, now))
        for r, dig in by_repo_digest.items():
            if r not in seen:
                rows.append(ImageContext(image, r, "<none>", dig, trunc, now))
    return rows


def images(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] [REPOSITORY[:TAG]]", "List images", max_args=1)
    p.add("-a", "--all", kind="bool", help="Show all images (default hides intermediate images)")
    p.add("--digests", kind="bool", help="Show digests")
    p.add("-f", "--filter", kind="list", help="Filter output based on conditions provided")
    p.add("--format", help="Format output using a custom template")
    p.add("--no-trunc", kind="bool", help="Don't truncate output")
    p.add("-q", "--quiet", kind="bool", help="Only show image IDs")
    p.add("--tree", kind="bool", help="List multi-platform images as a tree (EXPERIMENTAL)")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    filters = list(ns.filter)
    if ns.args:
        filters.append(f"reference={ns.args[0]}")
    query = {"all": True if ns.all else None, "filters": parse_filters(filters)}
    result = cli.client.get_json("/images/json", query) or []
    fmt = ns.format
    if ns.quiet:
        fmt = "{{.ID}}"
    if not fmt or fmt == "table":
        fmt = "table {{.Repository}}\t{{.Tag}}\t"
        if ns.digests:
            fmt += "{{.Digest}}\t"
        fmt += "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    rows = image_rows(result, trunc=not ns.no_trunc, digests=ns.digests, now=time.time())
    print_listing(cli, fmt, rows, IMAGE_HEADERS)
    return 0


def _print_progress(cli: Cli, resp: Any) -> None:
    """Print a JSON progress stream as docker does without a terminal."""
    for msg in resp.json_lines():
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            raise StatusError(1, str(msg.get("error") or detail.get("message", "")))
        if "stream" in msg:
            cli.stdout.write(str(msg["stream"]).encode())
            cli.stdout.flush()
        elif "status" in msg:
            line = msg["status"]
            if msg.get("id"):
                line = f"{msg['id']}: {line}"
            if msg.get("progress"):
                line += " " + msg["progress"]
            cli.out(line)


def import_(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", "Import the contents from a "
               "tarball to create a filesystem image", min_args=1, max_args=2)
    p.add("-c", "--change", kind="list", help="Apply Dockerfile instruction to the created image")
    p.add("-m", "--message", help="Set commit message for imported image")
    p.add("--platform", help="Set platform if server is multi-platform capable")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    source = ns.args[0]
    repo = ns.args[1] if len(ns.args) > 1 else None
    body: Any = None
    from_src = source
    if source == "-":
        body = cli.stdin
    elif "://" not in source:
        try:
            body = open(source, "rb")
        except OSError as e:
            raise StatusError(1, f"open {source}: {e.strerror.lower()}")
        from_src = "-"
    query = [("changes", ns.change or None), ("fromSrc", from_src), ("message", ns.message),
             ("platform", ns.platform), ("repo", repo)]
    try:
        resp = cli.client.request("POST", "/images/create", query, body=body,
                                  headers={"Content-Type": "text/plain"}, stream=True)
    finally:
        if body is not None and body is not cli.stdin:
            body.close()
    _print_progress(cli, resp)
    return 0


def load(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Load an image from a tar archive or STDIN", max_args=0)
    p.add("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add("--platform", help="Load only the given platform variant")
    p.add("-q", "--quiet", kind="bool", help="Suppress the load output")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    if ns.input:
        try:
            body: Any = open(ns.input, "rb")
        except OSError as e:
            raise StatusError(1, f"open {ns.input}: {e.strerror.lower()}")
    else:
        if cli.isatty(cli.stdin):
            raise StatusError(1, "requested load from stdin, but stdin is empty")
        body = cli.stdin
    quiet = ns.quiet or not cli.isatty(cli.stdout)
    try:
        resp = cli.client.request("POST", "/images/load", {"quiet": quiet}, body=body,
                                  headers={"Content-Type": "application/x-tar"}, stream=True)
    finally:
        if body is not cli.stdin:
            body.close()
    _print_progress(cli, resp)
    return 0


def save(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] IMAGE [IMAGE...]", "Save one or more images to a tar archive "
               "(streamed to STDOUT by default)", min_args=1)
    p.add("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add("--platform", help="Save only the given platform variant")
    p.positional("images", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.images))
    out = open_output(cli, ns.output)
    try:
        resp = cli.client.request("GET", "/images/get", [("names", ns.images)], stream=True)
        try:
            write_stream(resp.read, out)
        finally:
            resp.close()
    finally:
        if out is not cli.stdout:
            out.close()
    return 0


def tag(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that "
               "refers to SOURCE_IMAGE", min_args=2, max_args=2)
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    repo, t = split_repo_tag(ns.args[1])
    cli.client.send("POST", f"/images/{ns.args[0]}/tag",
                    {"repo": normalize_name(repo), "tag": t or "latest"})
    return 0


def rmi(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", min_args=1)
    p.add("-f", "--force", kind="bool", help="Force removal of the image")
    p.add("--no-prune", kind="bool", help="Do not delete untagged parents")
    p.positional("images", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.images))
    query = {"force": True if ns.force else None, "noprune": True if ns.no_prune else None}
    failed = False
    for image in ns.images:
        try:
            result = cli.client.request("DELETE", f"/images/{image}", query).json() or []
        except APIError as e:
            cli.err(str(e))
            failed = True
            continue
        for item in result:
            if item.get("Untagged"):
                cli.out(f"Untagged: {item['Untagged']}")
            if item.get("Deleted"):
                cli.out(f"Deleted: {item['Deleted']}")
    if failed:
        raise StatusError(1)
    return 0


class HistoryContext(Context):
    FIELDS = ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")

    def __init__(self, h: dict[str, Any], trunc: bool, human: bool, now: float | None):
        self.h = h
        self.trunc = trunc
        self.human = human
        self.now = now

    def ID(self) -> str:
        ident = self.h.get("Id", "")
        return truncate_id(ident) if self.trunc and ident != "<missing>" else ident

    def CreatedAt(self) -> str:
        return rfc3339(self.h.get("Created", 0))

    def CreatedSince(self) -> str:
        if not self.human:
            return self.CreatedAt()
        return since(self.h.get("Created", 0), self.now)

    def CreatedBy(self) -> str:
        created_by = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(created_by, 45) if self.trunc else created_by

    def Size(self) -> str:
        size = self.h.get("Size") or 0
        return human_size(size) if self.human else str(size)

    def Comment(self) -> str:
        return self.h.get("Comment") or ""


def history(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] IMAGE", "Show the history of an image", min_args=1, max_args=1)
    p.add("--format", help="Format output using a custom template")
    p.add("-H", "--human", kind="bool", default=True, help="Print sizes and dates in human "
          "readable format (default true)")
    p.add("--no-trunc", kind="bool", help="Don't truncate output")
    p.add("--platform", help="Show history for the given platform")
    p.add("-q", "--quiet", kind="bool", help="Only show image IDs")
    p.positional("image", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.image))
    result = cli.client.get_json(f"/images/{ns.image[0]}/history") or []
    fmt = ns.format
    if ns.quiet:
        fmt = "{{.ID}}"
    if not fmt or fmt == "table":
        fmt = ("table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}")
    headers = {"ID": "IMAGE", "CreatedSince": "CREATED" if ns.human else "CREATED AT",
               "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE",
               "Comment": "COMMENT"}
    now = time.time()
    rows = [HistoryContext(h, not ns.no_trunc, ns.human, now) for h in result]
    print_listing(cli, fmt, rows, headers)
    return 0


def inspect(cli: Cli, name: str, argv: list[str]) -> int:
    return inspect_objects(cli, name, argv, kind="image")


def prune(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove unused images", max_args=0)
    p.add("-a", "--all", kind="bool", help="Remove all unused images, not just dangling ones")
    p.add("--filter", kind="list", help='Provide filter values (e.g. "until=<timestamp>")')
    p.add("-f", "--force", kind="bool", help="Do not prompt for confirmation")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    warning = ("WARNING! This will remove all images without at least one container "
               "associated to them." if ns.all else
               "WARNING! This will remove all dangling images.")
    if not ns.force and not confirm(cli, warning):
        return 0
    filters = [f"dangling={'false' if ns.all else 'true'}"] + list(ns.filter)
    report = cli.client.post_json("/images/prune", {"filters": parse_filters(filters)}) or {}
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        cli.out("Deleted Images:")
        for item in deleted:
            if item.get("Untagged"):
                cli.out(f"untagged: {item['Untagged']}")
            if item.get("Deleted"):
                cli.out(f"deleted: {item['Deleted']}")
        cli.out()
    cli.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0, 4)}")
    return 0
