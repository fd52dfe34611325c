# -*- test-case-name: dockerpy.test.test_stats -*-
"""``GET /containers/{id}/stats``: one sample (``stream=false``) or one per
second until the client goes away or the container is removed.

``stream=false`` takes two readings a second apart so that
``precpu_stats`` is filled (the docker CLI computes CPU % from the pair),
unless ``one-shot=true``.  A container that does not run gives Docker's
zero document.
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.internet import task

from dockerpy import errors
from dockerpy.api.app import query_bool
from dockerpy.containers import stats

#: Seconds between two samples of a stream (Docker's collector interval).
INTERVAL = 1.0


def install(app: Klein, daemon=None) -> None:
    def svc():
        return daemon.containers

    async def sample(cid: str):
        """A reading of a running container, or ``None``."""
        service = svc()
        try:
            rec = service.get(cid)
        except errors.NotFound:
            return None
        if not service.is_running(rec.id):
            return None
        return await daemon.in_thread(
            stats.read_sample, f"{service.cgroup_parent}/{rec.id}",
            daemon.reactor.seconds(), rec.state.pid or 0,
            rec.host_config.get("NetworkMode") == "host")

    def encode(doc: dict) -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode() + b"\n"

    @app.route("/containers/<string:cid>/stats", methods=["GET"])
    async def get_containers_stats(request, cid):
        rec = svc().get(cid)
        name = "/" + rec.name
        stream = query_bool(request, "stream", True)
        one_shot = query_bool(request, "one-shot", False)
        if one_shot and stream:
            raise errors.InvalidParameter("cannot have stream=true and one-shot=true")
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        if not stream:
            first = await sample(rec.id)
            if first is None or one_shot:
                return encode(stats.stats_json(rec.id, name, first))
            await task.deferLater(daemon.reactor, INTERVAL, lambda: None)
            second = await sample(rec.id)
            if second is None:
                return encode(stats.stats_json(rec.id, name, None))
            return encode(stats.stats_json(rec.id, name, second, first))
        request.write(b"")
        previous = None
        # Klein cancels this coroutine when the client goes away (the
        # deferLater below raises CancelledError).
        while True:
            try:
                rec = svc().get(rec.id)
            except errors.NotFound:
                return b""
            current = await sample(rec.id)
            request.write(encode(stats.stats_json(rec.id, "/" + rec.name, current,
                                                  previous)))
            previous = current
            await task.deferLater(daemon.reactor, INTERVAL, lambda: None)
