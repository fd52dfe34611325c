# -*- test-case-name: dockerpy.test.test_registry -*-
"""Manifest formats: Docker schema2, OCI image manifests, manifest lists and
OCI indexes, platform selection among them, and the schema2 manifest we
write on push.  Pure functions, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dockerpy.errors import InvalidParameter, NotFound

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_FOREIGN_LAYERS = ("application/vnd.oci.image.layer.nondistributable.v1.tar",
                      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")

# Accept header, in Docker's order of preference.
ACCEPT = [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX]
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
LAYER_TYPES = (DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
               "application/vnd.docker.image.rootfs.diff.tar")
FOREIGN_LAYER_TYPES = (DOCKER_FOREIGN_LAYER,) + OCI_FOREIGN_LAYERS


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: dict) -> "Descriptor":
        try:
            return cls(str(obj.get("mediaType") or ""), str(obj["digest"]), int(obj["size"]),
                       obj.get("platform"), tuple(obj.get("urls") or ()))
        except (KeyError, TypeError, ValueError):
            raise InvalidParameter(f"invalid manifest descriptor: {obj!r}") from None

    def to_json(self) -> dict:
        obj = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.urls:
            obj["urls"] = list(self.urls)
        return obj


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def default_variant(architecture: str) -> str:
    return {"arm64": "v8", "arm": "v7"}.get(architecture, "")


def parse_platform(spec: str | None, host_arch: str) -> Platform:
    """``linux/arm64/v8`` (or empty: the host's) -> Platform.

    :raises InvalidParameter: with containerd's wording.
    """
    if not spec:
        return Platform("linux", host_arch, default_variant(host_arch))
    parts = spec.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(f'"{spec}": unknown operating system or architecture: '
                               "invalid argument")
    os_ = parts[0]
    arch = parts[1] if len(parts) > 1 else host_arch
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    variant = parts[2] if len(parts) > 2 else default_variant(arch)
    return Platform(os_, arch, variant)


def detect_media_type(body: bytes, content_type: str) -> tuple[str, dict]:
    """The manifest's media type (its own field wins over Content-Type) and JSON."""
    try:
        obj = json.loads(body)
    except ValueError:
        raise InvalidParameter("invalid manifest: not JSON") from None
    if not isinstance(obj, dict):
        raise InvalidParameter("invalid manifest: not a JSON object")
    media = obj.get("mediaType") or content_type.split(";")[0].strip()
    if not obj.get("mediaType"):
        # OCI allows omitting mediaType: tell index from manifest by shape.
        if "manifests" in obj:
            media = OCI_INDEX
        elif "config" in obj and media not in IMAGE_TYPES:
            media = OCI_MANIFEST
    if media in SCHEMA1 or obj.get("schemaVersion") == 1:
        raise InvalidParameter(
            "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has "
            "been removed. Suggest the author of the image to upgrade the image to image "
            "manifest version 2, schema 2.")
    return media, obj


def _variant_ok(want: str, have: str, arch: str) -> bool:
    if not want or want == have:
        return True
    # An arm64 image without a variant is v8 (containerd's normalisation).
    return not have and want == default_variant(arch)


def select_manifest(index: dict, want: Platform) -> Descriptor:
    """Pick the manifest for ``want`` from a manifest list / OCI index.

    :raises NotFound: Docker's "no matching manifest" message.
    """
    candidates = []
    for obj in index.get("manifests") or []:
        desc = Descriptor.from_json(obj)
        p = desc.platform or {}
        if (p.get("os") or "") != want.os or (p.get("architecture") or "") != want.architecture:
            continue
        if not _variant_ok(want.variant, p.get("variant") or "", want.architecture):
            continue
        # Exact variant first, as containerd's platform matcher orders them.
        candidates.append((0 if (p.get("variant") or "") == want.variant else 1, desc))
    if not candidates:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    candidates.sort(key=lambda c: c[0])
    return candidates[0][1]


def image_layers(manifest: dict) -> tuple[Descriptor, list[Descriptor]]:
    """(config, layers) of an image manifest.

    :raises InvalidParameter: unknown layer media type (zstd ones are
        decompressed by the image store; foreign ones are fetched
        from the registry by digest, as Docker does on Linux).
    """
    try:
        config = Descriptor.from_json(manifest["config"])
        layers = [Descriptor.from_json(obj) for obj in manifest.get("layers") or []]
    except (KeyError, TypeError):
        raise InvalidParameter("invalid manifest: no config") from None
    for layer in layers:
        if layer.media_type not in LAYER_TYPES + FOREIGN_LAYER_TYPES:
            raise InvalidParameter(f"unsupported layer media type {layer.media_type}")
    return config, layers


def schema2_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """The manifest bytes Docker pushes (Go's MarshalIndent, three spaces)."""
    obj = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    return json.dumps(obj, indent=3).encode()
