# -*- test-case-name: dockerpy.test.test_api_images -*-
"""Image routes (``/images/...``, ``/commit``): import, load, save, list,
inspect, history, tag, remove, prune.  Shapes come from the image store;
version differences (``ContainerConfig`` gone in 1.45, ``VirtualSize`` in
1.44) are applied here only."""

from __future__ import annotations

import datetime
import json
import tempfile

from klein import Klein

from dockerpy import errors
from dockerpy.api.app import (api_version, check_filters, parse_filters, query, query_all,
                              query_bool, read_json, write_json)
from dockerpy.filters import label_match, reference_match
from dockerpy.timeutil import parse_timestamp_arg

IMAGE_LIST_FILTERS = {"dangling", "reference", "label", "before", "since", "until"}


def _adapt_inspect(body: dict, version: tuple[int, int]) -> dict:
    if version >= (1, 45):
        body.pop("ContainerConfig", None)
        body.pop("Container", None)
    if version >= (1, 44):
        body.pop("VirtualSize", None)
    return body


def _adapt_summary(body: dict, version: tuple[int, int]) -> dict:
    if version >= (1, 44):
        body.pop("VirtualSize", None)
    return body


def filter_images(store, images, filters: dict[str, list[str]], now: float):
    check_filters(filters, IMAGE_LIST_FILTERS)
    out = []
    before = [store.resolve(v).created for v in filters.get("before", [])]
    since = [store.resolve(v).created for v in filters.get("since", [])]
    for image in images:
        if "dangling" in filters:
            want = filters["dangling"][-1].lower() in ("true", "1")
            if want != (not image.repo_tags):
                continue
        if "reference" in filters:
            if not any(reference_match(n, filters["reference"])
                       for n in list(image.repo_tags) + list(image.repo_digests)):
                continue
        labels = (image.config.get("config") or {}).get("Labels") or {}
        if "label" in filters and not label_match(labels, filters["label"]):
            continue
        if before and not all(image.created < b for b in before):
            continue
        if since and not all(image.created > s for s in since):
            continue
        if "until" in filters:
            limit = min(parse_timestamp_arg(v, now) for v in filters["until"])
            if _created_ts(image) >= limit:
                continue
        out.append(image)
    return out


def _created_ts(image) -> float:
    from dockerpy.timeutil import parse_rfc3339

    created = image.created
    if isinstance(created, (int, float)):
        return float(created)
    if isinstance(created, datetime.datetime):
        return created.timestamp()
    return parse_rfc3339(created)


def _in_use(daemon):
    """A snapshot of which containers use which image, taken on the reactor
    thread, for the store's removal rules (which run in a worker thread)."""
    usage: dict[str, tuple[str, bool]] = {}
    for rec in daemon.containers.all():
        running = daemon.containers.is_running(rec.id)
        if rec.image not in usage or (running and not usage[rec.image][1]):
            usage[rec.image] = (rec.id, running)
    return usage.get


def _split_repo_tag(repo: str, tag: str | None) -> str:
    if tag:
        return f"{repo}:{tag}"
    return repo


def _publish_loaded(daemon, line: str) -> None:
    # "Loaded image: busybox:latest" or "Loaded image ID: sha256:..."
    name = line.split(": ", 1)[-1].strip()
    try:
        image_id = daemon.images.resolve(name).id
    except errors.DockerError:
        return
    daemon.events.publish("image", "load", image_id, {"name": name})


def _publish_removal(daemon, image_id: str, result: list) -> None:
    # As moby: an untag names the image by its id, not by the removed tag.
    for entry in result or []:
        if entry.get("Untagged"):
            daemon.events.publish("image", "untag", image_id, {"name": image_id})
        elif entry.get("Deleted"):
            daemon.events.publish("image", "delete", entry["Deleted"],
                                  {"name": entry["Deleted"]})


def install(app: Klein, daemon=None) -> None:
    store = lambda: daemon.images  # noqa: E731

    @app.route("/images/json", methods=["GET"])
    def get_images_json(request):
        filters = parse_filters(query(request, "filters"))
        images = filter_images(store(), store().images(), filters, daemon.reactor.seconds())
        if not query_bool(request, "all"):
            # As moby: untagged images with children are intermediate (a
            # build's steps, a commit's parent), listed with all=1 only.
            images = [i for i in images
                      if i.repo_tags or i.repo_digests or not store().children(i.id)]
        version = api_version(request)
        body = [_adapt_summary(store().summary(i), version) for i in images]
        if "reference" in filters:
            # Docker lists only the matching names of a matching image.
            for summary in body:
                summary["RepoTags"] = [t for t in summary.get("RepoTags") or []
                                       if reference_match(t, filters["reference"])]
                summary["RepoDigests"] = [t for t in summary.get("RepoDigests") or []
                                          if reference_match(t, filters["reference"])]
        body.sort(key=lambda s: s.get("Created", 0), reverse=True)
        return write_json(request, body)

    @app.route("/images/create", methods=["POST"])
    async def post_images_create(request):
        src = query(request, "fromSrc")
        if src is None:
            from dockerpy.api.registry import pull_route

            return await pull_route(request, daemon)
        if src != "-":
            raise errors.InvalidParameter("importing from a URL is not supported: use fromSrc=-")
        repo = query(request, "repo")
        tag = query(request, "tag")
        ref = _split_repo_tag(repo, tag) if repo else None
        changes = query_all(request, "changes")
        message = query(request, "message") or ""
        body = request.content
        body.seek(0)
        now = datetime.datetime.fromtimestamp(daemon.reactor.seconds(), datetime.timezone.utc)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        image = await daemon.in_thread(store().import_tar, body, ref, changes, message, now)
        daemon.events.publish("image", "import", image.id, {"name": ref or image.id})
        return json.dumps({"status": image.id}).encode() + b"\r\n"

    @app.route("/images/load", methods=["POST"])
    async def post_images_load(request):
        # quiet only hides progress bars, which we do not send: the
        # "Loaded image" lines are printed either way, as with Docker.
        body = request.content
        body.seek(0)
        lines = await daemon.in_thread(store().load, body)
        for line in lines:
            _publish_loaded(daemon, line)
        request.setHeader(b"content-type", b"application/json")
        return b"".join(json.dumps({"stream": line + "\n"}).encode() + b"\r\n"
                        for line in lines)

    @app.route("/images/get", methods=["GET"])
    async def get_images_get(request):
        names = query_all(request, "names")
        if not names:
            raise errors.InvalidParameter("no image names given")
        return await _save(request, names)

    @app.route("/images/<path:name>/get", methods=["GET"])
    async def get_image_get(request, name):
        return await _save(request, [name])

    async def _save(request, names):
        from dockerpy.api.containers import _send_file

        for name in names:
            store().resolve(name)  # 404 before any byte is sent
        tmp = tempfile.TemporaryFile(dir=daemon.conf.data_root)
        try:
            await daemon.in_thread(store().save, names, tmp)
            tmp.flush()
            tmp.seek(0)
        except BaseException:
            tmp.close()
            raise
        return await _send_file(request, tmp, b"application/x-tar")

    @app.route("/images/<path:name>/json", methods=["GET"])
    def get_image_inspect(request, name):
        image = store().resolve(name)
        return write_json(request, _adapt_inspect(store().inspect(image), api_version(request)))

    @app.route("/images/<path:name>/history", methods=["GET"])
    def get_image_history(request, name):
        image = store().resolve(name)
        return write_json(request, store().history(image))

    @app.route("/images/<path:name>/tag", methods=["POST"])
    async def post_image_tag(request, name):
        repo = query(request, "repo")
        if not repo:
            raise errors.InvalidParameter("repository name must have at least one component")
        await daemon.in_thread(store().tag, name, repo, query(request, "tag"))
        tagged = _split_repo_tag(repo, query(request, "tag") or "latest")
        daemon.events.publish("image", "tag", store().resolve(tagged).id, {"name": tagged})
        request.setResponseCode(201)
        return b""

    @app.route("/images/<path:name>", methods=["DELETE"])
    async def delete_image(request, name):
        image_id = store().resolve(name).id
        result = await daemon.in_thread(store().remove, name, query_bool(request, "force"),
                                        query_bool(request, "noprune"), _in_use(daemon))
        await daemon.containers.sweep_init_layers()
        _publish_removal(daemon, image_id, result)
        return write_json(request, result)

    @app.route("/images/prune", methods=["POST"])
    async def post_images_prune(request):
        filters = parse_filters(query(request, "filters"))
        check_filters(filters, {"dangling", "until", "label", "label!"})
        dangling = filters.get("dangling", ["true"])[-1].lower() in ("true", "1")
        now = daemon.reactor.seconds()
        until = None
        if filters.get("until"):
            until = datetime.datetime.fromtimestamp(
                min(parse_timestamp_arg(v, now) for v in filters["until"]),
                datetime.timezone.utc)
        result = await daemon.in_thread(store().prune, not dangling, _in_use(daemon),
                                        filters.get("label", []), filters.get("label!", []),
                                        until)
        await daemon.containers.sweep_init_layers()
        return write_json(request, result)

    @app.route("/commit", methods=["POST"])
    async def post_commit(request):
        from dockerpy.containers.service import merge_config

        cid = query(request, "container")
        if not cid:
            raise errors.InvalidParameter("container is required")
        rec = daemon.containers.get(cid)
        overrides = read_json(request) or {}
        changes = query_all(request, "changes")
        repo, tag = query(request, "repo"), query(request, "tag")
        ref = _split_repo_tag(repo, tag) if repo else None
        from dockerpy.images.store import apply_changes

        try:
            parent = store().get(rec.image)
        except errors.NotFound:
            parent = None  # the image was removed with --force; commit on top of nothing
        config = dict(rec.config)
        if overrides:
            config = merge_config(overrides, config)
        if changes:
            config = apply_changes(config, changes)
        now = datetime.datetime.fromtimestamp(daemon.reactor.seconds(), datetime.timezone.utc)
        image = await daemon.in_thread(
            store().commit, rec.layer_id, parent, config, rec.config,
            query(request, "author") or "", query(request, "comment") or "",
            " ".join([rec.path] + rec.args), ref, now, rec.id)
        return write_json(request, {"Id": image.id}, 201)
