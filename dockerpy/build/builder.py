# -*- test-case-name: dockerpy.test.test_integration_build -*-
"""The step executor of ``docker build`` (Docker's classic builder).

Each instruction of the stages needed for the target is expanded, looked
up in the cache by an explicit key (`dockerpy.build.cache.step_key`), and
on a miss executed: RUN in a real container (ContainerService) committed
as a layer; COPY/ADD written into a container's root (or, on ``scratch``,
a fresh tree) and committed; metadata instructions as an image with an
``empty_layer`` history entry.  Config, ``ContainerConfig`` and history
read as Docker's classic builder writes them.

Progress goes out through ``emit`` as Docker's JSON messages.  Everything a
step makes (containers, mounts, temporary files) is removed when the step
ends, fails or the build is cancelled.
"""

from __future__ import annotations

import codecs
import copy
import datetime
import io
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet import defer

from dockerpy import errors
from dockerpy.build import context as ctx
from dockerpy.build.cache import BuildCache, step_key
from dockerpy.build.parser import Dockerfile, Instruction, Stage, parse, parse_text, trigger_text
from dockerpy.build.shell import expand_heredoc, expand_word, expand_words
from dockerpy.images.store import short_id
from dockerpy.storage import layertar

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


class StepFailed(errors.DockerError):
    """A step failed: shown in the stream as ``errorDetail`` with ``code``."""

    status = 500

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    buildargs: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    nocache: bool = False
    rm: bool = True
    forcerm: bool = False
    quiet: bool = False
    network_mode: str | None = None
    #: ``host:ip`` lines for /etc/hosts of RUN containers.
    extra_hosts: list[str] = field(default_factory=list)
    #: /dev/shm size of RUN containers (bytes, 0: the default 64 MB).
    shm_size: int = 0
    #: Images whose layers and history may satisfy the cache (``--cache-from``).
    cache_from: list[str] = field(default_factory=list)


@dataclass
class _State:
    stage: Stage
    image: Any                          # dockerpy.images.store.Image, None for scratch
    config: dict
    args: dict[str, str | None] = field(default_factory=dict)
    author: str = ""
    cmd_set: bool = False

    @property
    def image_id(self) -> str:
        return self.image.id if self.image is not None else ""

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def env(self) -> dict[str, str]:
        out = {k: v for k, v in self.args.items() if v is not None}
        for entry in self.config.get("Env") or []:
            k, _, v = entry.partition("=")
            out[k] = v
        return out


def _shield(d: defer.Deferred) -> defer.Deferred:
    """A Deferred following ``d`` whose cancellation leaves ``d`` running."""
    out: defer.Deferred = defer.Deferred()

    def done(result):
        if not out.called:
            out.callback(result) if not isinstance(result, Exception) else out.errback(result)
        return None

    def failed(f):
        if not out.called:
            out.errback(f)
        return None

    d.addCallbacks(done, failed)
    return out


def go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\\u0026", "&")


def go_quote_list(items: list[str] | None) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in (items or [])) + "]"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` for whole-ish values."""
    if ns == 0:
        return "0s"
    out = ""
    neg = ns < 0
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, div in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if ns >= div:
                value = ns / div
                return ("-" if neg else "") + f"{value:g}{unit}"
    h, rem = divmod(ns, 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    s = rem / 10**9
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    out += f"{s:g}s"
    return ("-" if neg else "") + out


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}


def parse_duration(s: str, name: str) -> int:
    if s in ("0", ""):
        return 0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if m is None:
            raise errors.InvalidParameter(f'time: invalid duration "{s}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return int(total)


def _expose(ports: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for spec in ports:
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise errors.InvalidParameter(f"invalid proto: {proto}")
        lo, _, hi = port.partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError:
            raise errors.InvalidParameter(f"invalid containerPort: {port}") from None
        for p in range(start, end + 1):
            out[f"{p}/{proto}"] = {}
    return out


class Builder:
    """Runs one build.

    :param emit: called with each JSON message (a dict) to send.
    :param now: clock (``reactor.seconds``).
    """

    def __init__(self, in_thread, images, containers, cache: BuildCache,
                 emit: Callable[[dict], None], now: Callable[[], float]) -> None:
        self._in_thread = in_thread
        self.images = images
        self.containers = containers
        self.cache = cache
        self._emit = emit
        self._now = now
        self._temps: list[str] = []
        self.quiet = False

    # -- output -------------------------------------------------------------

    def out(self, text: str) -> None:
        if not self.quiet:
            self._emit({"stream": text})

    def _time(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self._now(), datetime.timezone.utc)

    async def _op(self, d, key: str | None = None):
        """Await ``d``; if the build is cancelled meanwhile, let ``d`` finish
        (a half-done store or container operation would leak) and re-raise.
        With ``key``, ``d`` makes a step's image: one finished after the
        cancellation is still recorded as that step's cache entry (so it is
        neither lost work nor an image nothing refers to)."""
        d = defer.ensureDeferred(d) if not isinstance(d, defer.Deferred) else d
        try:
            return await _shield(d)
        except defer.CancelledError:
            try:
                result = await d
            except Exception:
                pass
            else:
                if key is not None and result is not None:
                    self.cache.put(key, result.id)
            raise

    # -- the build ------------------------------------------------------------

    def load(self, context: "str | ctx.Tree", opts: BuildOptions) -> Dockerfile:
        """Read and parse the Dockerfile (blocking) from the context (a
        directory or a `dockerpy.build.context.TarTree`).  Errors here are
        reported as HTTP errors, before any progress is sent."""
        tree = ctx.as_tree(context)
        name = opts.dockerfile or "Dockerfile"
        cleaned = posixpath.normpath("/" + name).lstrip("/")
        rel = posixpath.normpath(name)
        # An absolute path names a file of the context, as with Docker.
        if rel == ".." or rel.startswith("../"):
            raise errors.InvalidParameter(
                f"Cannot locate specified Dockerfile: {name} (outside the build context)")

        def is_file(handle: str) -> bool:
            meta = tree.stat(handle)
            return meta is not None and meta.kind == "file"

        path = tree.resolve(cleaned)
        if not is_file(path):
            # Docker also accepts a lower-case "dockerfile" when the default is missing.
            alt = tree.resolve("dockerfile")
            if name == "Dockerfile" and is_file(alt):
                path = alt
            else:
                raise errors.InvalidParameter(f"Cannot locate specified Dockerfile: {name}")
        with tree.open(path) as f:
            text = f.read().decode("utf-8", "replace")
        if not text.strip():
            raise errors.InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
        df = parse(text)
        if opts.labels:
            labels = " ".join(f"{go_quote(k)}={go_quote(v)}"
                              for k, v in sorted(opts.labels.items()))
            target = self._target_index(df, opts.target)
            df.stages[target].instructions.extend(parse_text(f"LABEL {labels}"))
        self._target_index(df, opts.target)
        return df

    @staticmethod
    def _target_index(df: Dockerfile, target: str | None) -> int:
        if not target:
            return len(df.stages) - 1
        for s in df.stages:
            if s.name == target.lower():
                return s.index
        raise errors.InvalidParameter(f"failed to reach build target {target} in Dockerfile")

    def _needed(self, df: Dockerfile, target: int, meta_env: dict[str, str]) -> list[Stage]:
        by_name = {s.name: s.index for s in df.stages if s.name}
        needed = {target}
        todo = [target]
        while todo:
            s = df.stages[todo.pop()]
            refs = [expand_word(s.base, meta_env, df.escape).lower()]
            refs += [i.flag("from") or "" for i in s.instructions if i.cmd in ("copy",)]
            for r in refs:
                idx = by_name.get(r.lower()) if r else None
                if idx is None and r.isdigit() and int(r) < s.index:
                    idx = int(r)
                if idx is not None and idx < s.index and idx not in needed:
                    needed.add(idx)
                    todo.append(idx)
        return [s for s in df.stages if s.index in needed]

    async def build(self, context: "str | ctx.Tree", df: Dockerfile, opts: BuildOptions) -> str:
        """Run the build; return the final image id (tags applied).

        :param context: a directory or a `dockerpy.build.context.TarTree`.
        """
        self.quiet = opts.quiet
        self.opts = opts
        self.context = ctx.as_tree(context)
        self.escape = df.escape
        self.ignore = await self._in_thread(ctx.IgnoreMatcher.from_context, self.context)
        self.cache_sources = []
        for ref in opts.cache_from:
            try:
                self.cache_sources.append(self.images.resolve(ref))
            except (errors.NotFound, errors.InvalidParameter):
                # Docker skips a --cache-from image it does not have.
                continue
        self.used_args: set[str] = set()
        try:
            return await self._build(df, opts)
        finally:
            for path in self._temps:
                shutil.rmtree(path, ignore_errors=True)

    async def _build(self, df: Dockerfile, opts: BuildOptions) -> str:
        target = self._target_index(df, opts.target)
        meta: dict[str, str | None] = {}
        for ins in df.meta_args:
            for name, default in self._arg_pairs(ins, {k: v for k, v in meta.items()
                                                        if v is not None}):
                meta[name] = opts.buildargs.get(name) if opts.buildargs.get(name) is not None \
                    else default
                self.used_args.add(name)
        meta_env = {k: v for k, v in meta.items() if v is not None}
        stages = self._needed(df, target, meta_env)
        total = df.total_steps(stages)
        step = 0
        for ins in df.meta_args:
            step += 1
            self.out(f"Step {step}/{total} : {ins.original}\n")
        self.results: dict[int, _State] = {}
        state = None
        for stage in stages:
            step += 1
            self.out(f"Step {step}/{total} : {stage.from_instruction.original}\n")
            state = await self._from(df, stage, meta, meta_env)
            for ins in stage.instructions:
                step += 1
                self.out(f"Step {step}/{total} : {ins.original}\n")
                await self._dispatch(state, ins)
            self.results[stage.index] = state
        assert state is not None
        if state.image is None:
            raise StepFailed("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in opts.buildargs
                        if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                     "consumed\n")
        image_id = state.image.id
        self._emit({"aux": {"ID": image_id}})
        if opts.quiet:
            self._emit({"stream": image_id + "\n"})
        self.out(f"Successfully built {short_id(image_id)}\n")
        for tag in opts.tags:
            shown = await self._op(self._in_thread(self.images.tag, image_id, tag, None))
            if ":" not in shown.rsplit("/", 1)[-1]:
                shown += ":latest"
            self.out(f"Successfully tagged {shown}\n")
        return image_id

    # -- FROM -------------------------------------------------------------------

    async def _from(self, df: Dockerfile, stage: Stage, meta, meta_env) -> _State:
        base = expand_word(stage.base, meta_env, df.escape)
        by_name = {s.name: s.index for s in df.stages if s.name}
        image = None
        if base.lower() in by_name and by_name[base.lower()] in self.results:
            prev = self.results[by_name[base.lower()]]
            image = prev.image
        elif base.lower() != "scratch":
            try:
                image = self.images.resolve(base)
            except errors.NotFound:
                raise StepFailed(
                    f"pull access denied for {base}, repository does not exist or may require "
                    "'docker login': this daemon does not pull images (load or import it "
                    "first)") from None
        config = copy.deepcopy((image.config.get("config") if image else None) or {})
        state = _State(stage, image, config)
        # A stage sees the meta ARGs only through ARG declarations; keep their
        # values at hand for those.
        state.meta = meta  # type: ignore[attr-defined]
        env_keys = [e.split("=", 1)[0] for e in config.get("Env") or []]
        if "PATH" not in env_keys:
            config["Env"] = list(config.get("Env") or []) + [f"PATH={DEFAULT_PATH}"]
        config["Image"] = state.image_id
        if image is not None:
            self.out(f" ---> {short_id(image.id)}\n")
        triggers = list(config.get("OnBuild") or [])
        config["OnBuild"] = None
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger"
                     f"{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                for ins in parse_text(text):
                    await self._dispatch(state, ins)
        return state

    # -- dispatch -----------------------------------------------------------------

    async def _dispatch(self, st: _State, ins: Instruction) -> None:
        handler = getattr(self, "_do_" + ins.cmd)
        await handler(st, ins)

    def _word(self, st: _State, text: str) -> str:
        return expand_word(text, st.env(), self.escape)

    def _arg_pairs(self, ins: Instruction, env: dict[str, str]):
        for raw in ins.value:
            name, eq, default = raw.partition("=")
            yield name, (expand_word(default, env, self.escape) if eq else None)

    # metadata instructions ----------------------------------------------------

    async def _commit_meta(self, st: _State, comment: str, key_extra: str = "") -> None:
        cmd = st.shell() + ["#(nop) ", comment]
        created_by = " ".join(cmd)
        # The comment holds every expanded value the step wrote: no build
        # args in the key, so an ARG step hits whatever value it is given.
        key = step_key(st.image_id, created_by, extra=key_extra)
        if await self._try_cache(st, key, created_by):
            return
        cid = secrets.token_hex(32)
        self.out(f" ---> Running in {cid[:12]}\n")
        config = copy.deepcopy(st.config)
        config["Image"] = st.image_id
        cconfig = copy.deepcopy(config)
        cconfig["Cmd"] = cmd
        cconfig["Hostname"] = cid[:12]
        image = await self._op(self._in_thread(
            self.images.add_layer_image, st.image, None, config, cconfig, created_by,
            self._time(), cid, st.author), key)
        if self.opts.rm or self.opts.forcerm:
            self.out(f"Removing intermediate container {cid[:12]}\n")
        self._advance(st, image, key)

    def _args_used(self, st: _State) -> list[str]:
        env_keys = {e.split("=", 1)[0] for e in st.config.get("Env") or []}
        return sorted(f"{k}={v}" for k, v in st.args.items()
                      if v is not None and k not in env_keys and k not in PROXY_ARGS)

    async def _try_cache(self, st: _State, key: str, created_by: str) -> bool:
        if self.opts.nocache:
            return False
        hit = self.cache.get(key, self._image_exists)
        if self.cache_sources:
            # As Docker's classic builder: with --cache-from, a local hit
            # counts only when it is an ancestor of one of those images.
            if hit is not None and not any(self._is_ancestor(hit, s)
                                           for s in self.cache_sources):
                hit = None
            if hit is None:
                hit = await self._op(self._in_thread(self._cache_from, st, created_by))
        if hit is None:
            return False
        image = self.images.get(hit)
        self.out(" ---> Using cache\n")
        self._set_image(st, image)
        self.out(f" ---> {short_id(image.id)}\n")
        return True

    def _is_ancestor(self, image_id: str, of) -> bool:
        seen = set()
        current = of.parent
        while current and current not in seen:
            if current == image_id:
                return True
            seen.add(current)
            try:
                current = self.images.get(current).parent
            except errors.NotFound:
                return False
        return False

    def _cache_from(self, st: _State, created_by: str) -> str | None:
        """Thread: Docker's classic ``--cache-from`` match: a source image
        whose history and layers start with the parent's, and whose next
        history entry was made by this very step.  Its last step is that
        image itself; an earlier one is rebuilt as an image of the parent's
        layers plus that step's layer (no content is copied)."""
        from dockerpy.images.store import encode_image_config

        parent = st.image
        pconf = parent.config if parent is not None else {}
        p_history = list(pconf.get("history") or [])
        p_diffs = list(parent.diff_ids) if parent is not None else []
        n = len(p_history)
        for target in self.cache_sources:
            history = list(target.config.get("history") or [])
            if not history or len(history) <= n:
                continue
            if parent is not None and (p_history or p_diffs):
                if history[:n] != p_history or \
                        list(target.diff_ids[:len(p_diffs)]) != p_diffs:
                    continue
            if history[n].get("created_by", "") != created_by:
                continue
            if len(history) - 1 == n:
                return target.id
            diff_ids = list(p_diffs)
            if not history[n].get("empty_layer"):
                index = sum(1 for h in history[:n] if not h.get("empty_layer"))
                if index >= len(target.diff_ids):
                    continue
                diff_ids.append(target.diff_ids[index])
            config = copy.deepcopy(st.config)
            config["Image"] = st.image_id
            image_config = {
                "architecture": target.config.get("architecture"),
                "os": target.config.get("os") or "linux",
                "author": target.config.get("author"),
                "config": config,
                "created": history[n].get("created"),
                "docker_version": target.config.get("docker_version"),
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": p_history + [history[n]],
            }
            raw = encode_image_config({k: v for k, v in image_config.items()
                                       if v not in (None, "") or k == "config"})

            def missing():
                raise errors.NotFound("cache-from layer is missing")

            try:
                image = self.images.add_image(raw, [missing] * len(diff_ids))
            except errors.DockerError:
                continue
            # Stay on this source from now on, as Docker does.
            self.cache_sources = [target]
            return image.id
        return None

    def _image_exists(self, image_id: str) -> bool:
        try:
            self.images.get(image_id)
            return True
        except errors.NotFound:
            return False

    def _set_image(self, st: _State, image) -> None:
        st.image = image
        st.config = copy.deepcopy(image.config.get("config") or {})
        st.config["Image"] = image.id

    def _advance(self, st: _State, image, key: str) -> None:
        self.cache.put(key, image.id)
        self._set_image(st, image)
        self.out(f" ---> {short_id(image.id)}\n")

    async def _do_env(self, st: _State, ins: Instruction) -> None:
        env = st.env()
        pairs = [(expand_word(ins.value[i], env, self.escape),
                  expand_word(ins.value[i + 1], env, self.escape))
                 for i in range(0, len(ins.value), 2)]
        current = list(st.config.get("Env") or [])
        for k, v in pairs:
            entry = f"{k}={v}"
            for i, e in enumerate(current):
                if e.split("=", 1)[0] == k:
                    current[i] = entry
                    break
            else:
                current.append(entry)
        st.config["Env"] = current
        await self._commit_meta(st, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _do_label(self, st: _State, ins: Instruction) -> None:
        env = st.env()
        pairs = [(expand_word(ins.value[i], env, self.escape),
                  expand_word(ins.value[i + 1], env, self.escape))
                 for i in range(0, len(ins.value), 2)]
        labels = dict(st.config.get("Labels") or {})
        labels.update(pairs)
        st.config["Labels"] = labels
        await self._commit_meta(st, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _do_maintainer(self, st: _State, ins: Instruction) -> None:
        st.author = " ".join(ins.value)
        await self._commit_meta(st, "MAINTAINER " + st.author)

    async def _do_expose(self, st: _State, ins: Instruction) -> None:
        ports: list[str] = []
        # Docker's parser sorts the words as written, before expansion, and
        # the history shows them so ("EXPOSE 53/udp 80 9000-9002").
        for v in sorted(ins.value):
            ports.extend(expand_words(v, st.env(), self.escape))
        new = _expose(ports)
        exposed = dict(st.config.get("ExposedPorts") or {})
        exposed.update(new)
        st.config["ExposedPorts"] = exposed
        await self._commit_meta(st, "EXPOSE " + " ".join(ports))

    async def _do_user(self, st: _State, ins: Instruction) -> None:
        st.config["User"] = self._word(st, ins.value[0])
        await self._commit_meta(st, "USER " + st.config["User"])

    async def _do_stopsignal(self, st: _State, ins: Instruction) -> None:
        from dockerpy.containers.service import parse_signal

        sig = self._word(st, ins.value[0])
        parse_signal(sig)
        st.config["StopSignal"] = sig
        await self._commit_meta(st, "STOPSIGNAL " + sig)

    async def _do_volume(self, st: _State, ins: Instruction) -> None:
        vols: list[str] = []
        for v in ins.value:
            vols.extend([v] if ins.json else expand_words(v, st.env(), self.escape))
        volumes = dict(st.config.get("Volumes") or {})
        for v in vols:
            if not v.strip():
                raise StepFailed("VOLUME specified can not be an empty string")
            volumes[v.strip()] = {}
        st.config["Volumes"] = volumes
        await self._commit_meta(st, "VOLUME [" + " ".join(vols) + "]")

    async def _do_shell(self, st: _State, ins: Instruction) -> None:
        if not ins.json:
            raise StepFailed("SHELL requires the arguments to be in JSON form")
        st.config["Shell"] = list(ins.value)
        await self._commit_meta(st, "SHELL [" + " ".join(ins.value) + "]")

    def _command(self, st: _State, ins: Instruction) -> list[str]:
        if ins.json:
            return list(ins.value)
        return st.shell() + [" ".join(ins.value)]

    async def _do_cmd(self, st: _State, ins: Instruction) -> None:
        st.config["Cmd"] = self._command(st, ins)
        st.cmd_set = True
        await self._commit_meta(st, "CMD " + go_quote_list(st.config["Cmd"]))

    async def _do_entrypoint(self, st: _State, ins: Instruction) -> None:
        value = self._command(st, ins)
        st.config["Entrypoint"] = value if (ins.json or ins.value[0]) else None
        if not st.cmd_set:
            st.config["Cmd"] = None
        await self._commit_meta(st, "ENTRYPOINT " + go_quote_list(st.config["Entrypoint"]))

    async def _do_onbuild(self, st: _State, ins: Instruction) -> None:
        trigger = trigger_text(ins)
        st.config["OnBuild"] = list(st.config.get("OnBuild") or []) + [trigger]
        await self._commit_meta(st, "ONBUILD " + trigger)

    async def _do_healthcheck(self, st: _State, ins: Instruction) -> None:
        value = list(ins.value)
        if value and value[0].upper() == "NONE":
            if len(value) > 1 or ins.flags:
                raise StepFailed("HEALTHCHECK NONE takes no arguments")
            hc: dict[str, Any] = {"Test": ["NONE"]}
        else:
            if not value or value[0].upper() != "CMD":
                raise StepFailed("Unknown type in HEALTHCHECK (try CMD)")
            rest = value[1:]
            test = ["CMD"] + rest if ins.json else ["CMD-SHELL", " ".join(rest)]
            hc = {"Test": test}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                v = ins.flag(flag)
                if v is not None:
                    ns = parse_duration(v, flag)
                    if ns:
                        hc[key] = ns
            retries = ins.flag("retries")
            if retries is not None:
                try:
                    n = int(retries)
                except ValueError:
                    raise StepFailed(f'strconv.ParseInt: parsing "{retries}": invalid syntax')
                if n < 0:
                    raise StepFailed("--retries cannot be negative")
                if n:
                    hc["Retries"] = n
        st.config["Healthcheck"] = hc
        r = hc.get("Retries", 0)
        retries_q = f"'{chr(r)}'" if 32 <= r < 127 and chr(r) not in "'\\" else f"'\\x{r:02x}'"
        shown = "&{" + go_quote_list(hc["Test"]) + " " + " ".join(
            go_quote(go_duration(hc.get(k, 0)))
            for k in ("Interval", "Timeout", "StartPeriod")) + \
            f" {retries_q}}}"
        await self._commit_meta(st, "HEALTHCHECK " + shown)

    async def _do_arg(self, st: _State, ins: Instruction) -> None:
        meta = getattr(st, "meta", {})
        shown = []
        for name, default in self._arg_pairs(ins, st.env()):
            given = self.opts.buildargs.get(name)
            if given is not None:
                value = given
            elif default is not None:
                value = default
            else:
                value = meta.get(name)
            st.args[name] = value
            self.used_args.add(name)
            shown.append(name if default is None else f"{name}={default}")
        await self._commit_meta(st, "ARG " + " ".join(shown))

    async def _do_workdir(self, st: _State, ins: Instruction) -> None:
        path = self._word(st, ins.value[0])
        if not path.startswith("/"):
            path = posixpath.join(st.config.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)
        if path.startswith("//"):
            path = path[1:]
        st.config["WorkingDir"] = path
        comment = "WORKDIR " + path
        # One word, unlike the metadata steps: "#(nop) WORKDIR /w" (one space).
        cmd = st.shell() + ["#(nop) " + comment]
        created_by = " ".join(cmd)
        key = step_key(st.image_id, created_by, self._args_used(st))
        if await self._try_cache(st, key, created_by):
            return
        rel = path.lstrip("/")

        def make(src_root, root):
            if rel:
                self._copy_into(root, [ctx.Entry(rel, "/", "dir", 0o755)], None, None)

        await self._layer_step(st, make, created_by, cmd, key, None, container_output=True)

    # RUN ----------------------------------------------------------------------------

    async def _do_run(self, st: _State, ins: Instruction) -> None:
        if st.image is None:
            raise StepFailed("Please provide a source image with `from` prior to run")
        if ins.json:
            argv = list(ins.value)
        else:
            text = " ".join(ins.value)
            if ins.heredocs and text.strip().startswith("<<") and len(ins.heredocs) == 1:
                text = ins.heredocs[0].content
            elif ins.heredocs:
                text = ins.original.split(None, 1)[1]
                text = text[len(" ".join(ins.flags)):].lstrip() if ins.flags else text
            argv = st.shell() + [text]
        args_env = self._args_used(st)
        save_cmd = ([f"|{len(args_env)}"] + args_env + argv) if args_env else list(argv)
        created_by = " ".join(save_cmd)
        key = step_key(st.image_id, created_by, args_env)
        if await self._try_cache(st, key, created_by):
            return
        proxies = [f"{k}={v}" for k, v in self.opts.buildargs.items()
                   if k in PROXY_ARGS and v is not None]
        body = copy.deepcopy(st.config)
        body.pop("Healthcheck", None)
        body.update({"Cmd": argv, "Entrypoint": [""], "Image": st.image.id,
                     "Env": list(st.config.get("Env") or []) + args_env + proxies,
                     "AttachStdout": True, "AttachStderr": True})
        host_config: dict[str, Any] = {}
        if self.opts.network_mode and self.opts.network_mode != "default":
            host_config["NetworkMode"] = self.opts.network_mode
        if self.opts.extra_hosts:
            host_config["ExtraHosts"] = list(self.opts.extra_hosts)
        if self.opts.shm_size:
            host_config["ShmSize"] = self.opts.shm_size
        if host_config:
            body["HostConfig"] = host_config
        cconfig = copy.deepcopy(st.config)
        cconfig["Cmd"] = save_cmd
        cconfig["Entrypoint"] = None
        rec = await self._create(body)
        try:
            self.out(f" ---> Running in {rec.id[:12]}\n")
            code = await self._run_container(rec)
            if code != 0:
                raise StepFailed(f"The command '{' '.join(argv)}' returned a non-zero code: "
                                 f"{code}", code)
            cconfig["Hostname"] = rec.config.get("Hostname") or rec.id[:12]
            config = copy.deepcopy(st.config)
            config["Image"] = st.image.id
            image = await self._op(self._in_thread(
                self.images.commit, rec.layer_id, st.image, config, cconfig, st.author, "",
                created_by, None, self._time(), rec.id), key)
        except BaseException:
            await self._remove(rec, announce=False)
            raise
        await self._remove(rec, announce=self.opts.rm or self.opts.forcerm)
        self._advance(st, image, key)

    async def _create(self, body: dict):
        d = defer.ensureDeferred(self.containers.create(body))
        try:
            return await _shield(d)
        except defer.CancelledError:
            try:
                rec = await d
            except Exception:
                raise defer.CancelledError() from None
            await self._remove(rec, announce=False)
            raise

    async def _remove(self, rec, announce: bool) -> None:
        try:
            await _shield(defer.ensureDeferred(
                self.containers.remove(rec.id, force=True, volumes=True)))
        except errors.NotFound:
            pass
        if announce:
            self.out(f"Removing intermediate container {rec.id[:12]}\n")

    async def _run_container(self, rec) -> int:
        decoders = {"stdout": codecs.getincrementaldecoder("utf-8")("replace"),
                    "stderr": codecs.getincrementaldecoder("utf-8")("replace")}
        ended: defer.Deferred = defer.Deferred()

        def output(stream: str, data: bytes) -> None:
            text = decoders[stream].decode(data)
            if text:
                self.out(text)

        att = self.containers.attach(rec.id, False, True, True, output,
                                     lambda: ended.called or ended.callback(None))
        exited = self.containers.wait(rec.id, "next-exit")
        try:
            try:
                await self._op(self.containers.start(rec.id))
            except errors.DockerError as e:
                raise StepFailed(e.message, 127 if "not found" in e.message else 126) from None
            code = await exited
            if not ended.called:
                await ended
        finally:
            att.detach()
        return int(code)

    # COPY / ADD -------------------------------------------------------------------

    async def _do_copy(self, st: _State, ins: Instruction) -> None:
        await self._copy(st, ins, add=False)

    async def _do_add(self, st: _State, ins: Instruction) -> None:
        await self._copy(st, ins, add=True)

    def _owner(self, st: _State, spec: str | None, root: str | None) -> tuple[int, int] | None:
        if not spec:
            return None
        spec = self._word(st, spec)
        user, _, group = spec.partition(":")

        def lookup(name: str, file: str) -> int:
            if name.isdigit():
                return int(name)
            if root is not None:
                try:
                    with open(ctx.resolve_in_root(root, "/etc/" + file), encoding="utf-8",
                              errors="replace") as f:
                        for line in f:
                            parts = line.split(":")
                            if parts[0] == name and len(parts) > 2:
                                return int(parts[2])
                except OSError:
                    pass
            raise StepFailed(f"unable to convert uid/gid chown string to host mapping: "
                             f"can't find uid for user {name}: no such user: {name}")

        uid = lookup(user, "passwd")
        gid = lookup(group, "group") if group else uid
        return uid, gid

    async def _copy(self, st: _State, ins: Instruction, add: bool) -> None:
        name = "ADD" if add else "COPY"
        env = st.env()
        words = [expand_word(v, env, self.escape) for v in ins.value]
        if len(words) < 2:
            raise StepFailed(f"{name} requires at least two arguments, but only one was "
                             "provided. Destination could not be determined.")
        srcs, dest = words[:-1], words[-1]
        heredoc_tree = None
        if ins.heredocs:
            srcs, heredoc_tree = self._heredoc_sources(ins, words, env, name)
        # --link only changes how BuildKit stacks the layer; the files are the same.
        parents = ins.flag("parents") not in (None, "false")
        if add:
            for s in srcs:
                if re.match(r"^[a-z][a-z0-9+.-]*://", s, re.I):
                    raise StepFailed(f"ADD from a URL is not supported by this daemon (it has "
                                     f"no network access): {s}")
        chmod_s = ins.flag("chmod")
        chmod = None
        if chmod_s is not None:
            try:
                chmod = int(chmod_s, 8)
            except ValueError:
                raise StepFailed(f"invalid chmod parameter: {chmod_s}") from None
        from_ = ins.flag("from") if not add else None
        src_image = None
        if from_:
            from_ = self._word(st, from_)
            src_image = self._source_image(from_)
        workdir = st.config.get("WorkingDir") or "/"

        def plan(src_root):
            tree = ctx.as_tree(src_root)
            ignore = (self.ignore if src_image is None and not from_ and heredoc_tree is None
                      else None)
            sources = []
            pivots = []
            for s in srcs:
                found = ctx.resolve_sources(
                    src_root, s, ignore, "build context" if not from_ else "image")
                sources.extend(found)
                pivot = posixpath.normpath("/" + s.split("/./", 1)[0]).lstrip("/") \
                    if "/./" in s else ""
                pivots.extend([pivot] * len(found))
            if parents:
                entries = []
                dest_dir = dest if dest.endswith("/") else dest + "/"
                for source, pivot in zip(sources, pivots):
                    kept = source.rel
                    if pivot and kept.startswith(pivot + "/"):
                        kept = kept[len(pivot) + 1:]
                    if source.is_dir:
                        sub = dest_dir if kept == "." else f"{dest_dir}{kept}/"
                    else:
                        parent = posixpath.dirname(kept)
                        sub = f"{dest_dir}{parent}/" if parent else dest_dir
                    entries.extend(ctx.plan_copy(src_root, [source], sub, workdir, ignore))
            else:
                entries = ctx.plan_copy(src_root, sources, dest, workdir, ignore)
            archives = []
            if add:
                keep = []
                for e in entries:
                    if e.kind == "file" and ctx.is_archive(e.host, tree):
                        target_dir = (posixpath.join(workdir, dest) if not dest.startswith("/")
                                      else dest)
                        archives.append((e, posixpath.normpath(target_dir).lstrip("/")))
                    else:
                        keep.append(e)
                entries = keep
            digest = ctx.content_hash(entries + [a for a, _ in archives], None, chmod, tree)
            kind = "multi" if len(sources) > 1 else ("dir" if sources[0].is_dir else "file")
            return entries, archives, digest, kind

        async def with_source(fn):
            if heredoc_tree is not None:
                return await self._op(self._in_thread(fn, heredoc_tree))
            if src_image is False:
                tmp = tempfile.mkdtemp(prefix="build-empty-")
                self._temps.append(tmp)
                return await self._op(self._in_thread(fn, tmp))
            if src_image is None:
                return await self._op(self._in_thread(fn, self.context))
            return await self._op(self._in_thread(self._with_image_root, src_image, fn))

        entries, archives, digest, kind = await with_source(plan)
        chown_spec = ins.flag("chown")
        # Docker writes the --chown flag glued to the source kind ("--chown=1:2file:...").
        chown_comment = f"--chown={chown_spec}" if chown_spec else ""
        created_by_comment = f"{name} {chown_comment}{kind}:{digest} in {dest} "
        cmd = st.shell() + ["#(nop) " + created_by_comment]
        created_by = " ".join(cmd)
        key = step_key(st.image_id, created_by, self._args_used(st), digest,
                       f"chown={chown_spec} chmod={chmod_s}")
        if await self._try_cache(st, key, created_by):
            return

        def make(src_root, root: str) -> None:
            tree = ctx.as_tree(src_root)
            owner = self._owner(st, chown_spec, root)
            entries2, archives2, _, _ = plan(src_root)
            self._copy_into(root, entries2, owner, chmod, tree)
            for e, target in archives2:
                self._copy_into(root, [ctx.Entry(target, "/", "dir", 0o755)], None, None)
                from dockerpy.images.store import open_decompressed

                with tree.open(e.host) as raw:
                    base = ctx.resolve_in_root(root, target)
                    rel = os.path.relpath(base, root)
                    layertar.extract_tar(open_decompressed(raw), root,
                                         "" if rel == "." else rel)

        if st.image is not None and await self._copy_direct(
                st, plan, chown_spec, chmod, created_by, cmd, key, with_source):
            return
        await self._layer_step(st, make, created_by, cmd, key, with_source)

    async def _copy_direct(self, st: _State, plan, chown_spec: str | None, chmod: int | None,
                           created_by: str, cmd: list[str], key: str, with_source) -> bool:
        """COPY as a layer tar written straight from the sources, without a
        container: no file is created twice, diffed and deleted again.

        Only when the result is plain to predict: no archive to extract
        (ADD), and no symlink or non-directory in the image on the way to
        any entry (those follow the container path, whose extraction
        resolves them).  The tar holds what the container's diff would:
        each existing ancestor directory with the image's metadata, missing
        ones 0755 (owned by ``--chown``), then the entries.

        :return: whether the step was done.
        """
        fd, tar_path = tempfile.mkstemp(prefix="build-copy-", suffix=".tar")
        os.close(fd)
        self._temps.append(tar_path)
        now = int(self._now())

        def build_tar(src_root) -> bool:
            tree = ctx.as_tree(src_root)

            def in_image(root: str) -> bool:
                entries, archives, _, _ = plan(src_root)
                if archives:
                    return False
                owner = self._owner(st, chown_spec, root)
                dirs: dict[str, tuple[int, int, int]] = {}
                existing_dirs: set[str] = set()
                known: dict[str, os.stat_result | None] = {}

                def lstat(rel: str) -> os.stat_result | None:
                    if rel not in known:
                        try:
                            known[rel] = os.lstat(os.path.join(root, rel))
                        except (FileNotFoundError, NotADirectoryError):
                            known[rel] = None
                    return known[rel]

                for e in entries:
                    if not e.arcname:
                        return False
                    parts = e.arcname.split("/")
                    for i in range(1, len(parts)):
                        parent = "/".join(parts[:i])
                        if parent in dirs:
                            continue
                        st_ = lstat(parent)
                        if st_ is None:
                            uid, gid = owner or (0, 0)
                            dirs[parent] = (0o755, uid, gid)
                        elif stat.S_ISDIR(st_.st_mode):
                            dirs[parent] = (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid)
                            existing_dirs.add(parent)
                        else:
                            return False  # a symlink or a file on the way
                    st_ = lstat(e.arcname)
                    if st_ is not None:
                        if stat.S_ISLNK(st_.st_mode):
                            return False
                        if e.kind == "dir" and stat.S_ISDIR(st_.st_mode):
                            # Docker keeps an existing directory's metadata.
                            dirs[e.arcname] = (stat.S_IMODE(st_.st_mode), st_.st_uid,
                                               st_.st_gid)
                            existing_dirs.add(e.arcname)
                # Entries that are directories made by this COPY come from the
                # entries themselves, not from the ancestor list.
                planned = {e.arcname for e in entries if e.kind == "dir"}
                prefix = [(d, *dirs[d], now) for d in sorted(dirs)
                          if d in existing_dirs or d not in planned]
                with open(tar_path, "wb") as out:
                    ctx.write_entries_tar(entries, out, owner, chmod, existing_dirs, tree,
                                          prefix)
                return True

            return self._with_image_root(st.image, in_image)

        if not await with_source(build_tar):
            return False
        config = copy.deepcopy(st.config)
        config["Image"] = st.image_id
        cconfig = copy.deepcopy(config)
        cconfig["Cmd"] = cmd
        cconfig["Hostname"] = secrets.token_hex(6)
        image = await self._op(self._in_thread(
            self.images.add_layer_image, st.image, tar_path, config, cconfig, created_by,
            self._time(), "", st.author), key)
        self._advance(st, image, key)
        return True

    def _heredoc_sources(self, ins: Instruction, words: list[str], env: dict[str, str],
                         name: str) -> tuple[list[str], ctx.TarTree]:
        """``COPY <<EOF /dest``: each here-document is a file named after its
        delimiter (0644), expanded unless the delimiter is quoted, as
        BuildKit does.  :return: the source names and the tree holding them."""
        by_name = {h.name: h for h in ins.heredocs}
        files: dict[str, str] = {}
        others = []
        for raw in ins.value[:-1]:
            m = re.match(r"""^<<-?(["']?)(.+?)\1$""", raw)
            if m is not None and m.group(2) in by_name:
                content = by_name[m.group(2)].content
                if not m.group(1):
                    content = expand_heredoc(content, env, self.escape)
                files[m.group(2)] = content
            else:
                others.append(raw)
        if others:
            raise StepFailed(f"{name} cannot mix here-documents with other sources "
                             f"({' '.join(others)}) in this daemon")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for fname, content in files.items():
                data = content.encode("utf-8", "surrogateescape")
                info = tarfile.TarInfo(fname)
                info.mode = 0o644
                info.size = len(data)
                info.mtime = int(self._now())
                tar.addfile(info, io.BytesIO(data))
        return list(files), ctx.TarTree.index(buf, self._now())

    def _source_image(self, from_: str):
        """The image (or ``False`` for an empty root) COPY --from reads."""
        by_name = {s.stage.name: i for i, s in self.results.items() if s.stage.name}
        key = from_.lower()
        state = None
        if key in by_name:
            state = self.results[by_name[key]]
        elif key.isdigit() and int(key) in self.results:
            state = self.results[int(key)]
        if state is not None:
            return state.image if state.image is not None else False
        try:
            return self.images.resolve(from_)
        except errors.NotFound:
            raise StepFailed(f"invalid from flag value {from_}: No such image: {from_}") \
                from None

    def _with_image_root(self, image, fn):
        """Thread: ``fn(root)`` with the image's layers mounted read-only-ish
        (through a throw-away layer, so the image's own layer is never written)."""
        driver = self.images.driver
        parent = self.images.top_layer(image)
        if parent is None:
            tmp = tempfile.mkdtemp(prefix="build-empty-")
            try:
                return fn(tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        layer = "build-" + secrets.token_hex(16)
        driver.create(layer, parent)
        try:
            root = driver.mount(layer)
            try:
                return fn(root)
            finally:
                driver.unmount(layer)
        finally:
            driver.remove(layer)

    @staticmethod
    def _copy_into(root: str, entries: list[ctx.Entry], owner, chmod,
                   tree: "ctx.Tree | None" = None) -> None:
        """Thread: write ``entries`` into ``root`` (resolved inside it)."""
        skip = set()
        for e in entries:
            if e.kind == "dir":
                host = ctx.resolve_in_root(root, e.arcname)
                if os.path.isdir(host):
                    skip.add(e.arcname)
        if owner is not None:
            # Docker creates missing parents of the destination owned by --chown
            # (idtools.MkdirAllAndChownNew); the tar alone would make them root's.
            made: set[str] = set()
            for e in entries:
                parts = e.arcname.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    parent = "/".join(parts[:i])
                    if not parent or parent in made:
                        continue
                    made.add(parent)
                    host = ctx.resolve_in_root(root, parent)
                    if not os.path.lexists(host):
                        os.mkdir(host, 0o755)
                        os.chmod(host, 0o755)
                        os.lchown(host, *owner)
        with tempfile.TemporaryFile() as tmp:
            ctx.write_entries_tar(entries, tmp, owner, chmod, skip, tree)
            tmp.seek(0)
            layertar.extract_tar(tmp, root, "")

    async def _layer_step(self, st: _State, make, created_by: str, cmd: list[str], key: str,
                          with_source, container_output: bool = False) -> None:
        """A step that changes files: ``make(src_root, root)`` in a container's
        root (or a fresh tree on scratch), then committed."""
        config = copy.deepcopy(st.config)
        config["Image"] = st.image_id
        cconfig = copy.deepcopy(config)
        cconfig["Cmd"] = cmd
        if st.image is None:
            tree = tempfile.mkdtemp(prefix="build-scratch-")
            self._temps.append(tree)
            tar_path = tree + ".tar"
            self._temps.append(tar_path)

            def scratch(src_root):
                root = os.path.join(tree, "root")
                os.mkdir(root)
                make(src_root, root)
                with open(tar_path, "wb") as out:
                    layertar.write_upper_tar(root, out)

            if with_source is None:
                await self._op(self._in_thread(scratch, None))
            else:
                await with_source(scratch)
            image = await self._op(self._in_thread(
                self.images.add_layer_image, None, tar_path, config, cconfig, created_by,
                self._time(), "", st.author), key)
            os.unlink(tar_path)
            self._advance(st, image, key)
            return
        body = copy.deepcopy(st.config)
        body.update({"Image": st.image.id, "Cmd": cmd, "Entrypoint": [""]})
        body.pop("Healthcheck", None)
        rec = await self._create(body)
        try:
            if container_output:
                self.out(f" ---> Running in {rec.id[:12]}\n")
            driver = self.containers.driver

            def in_root(src_root):
                root = driver.mount(rec.layer_id)
                try:
                    make(src_root, root)
                finally:
                    driver.unmount(rec.layer_id)

            if with_source is None:
                await self._op(self._in_thread(in_root, None))
            else:
                await with_source(in_root)
            cconfig["Hostname"] = rec.id[:12]
            image = await self._op(self._in_thread(
                self.images.commit, rec.layer_id, st.image, config, cconfig, st.author, "",
                created_by, None, self._time(), rec.id if container_output else ""), key)
        except BaseException:
            await self._remove(rec, announce=False)
            raise
        await self._remove(rec, announce=container_output and (self.opts.rm or
                                                                self.opts.forcerm))
        self._advance(st, image, key)
