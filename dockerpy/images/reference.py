# -*- test-case-name: dockerpy.test.test_reference -*-
"""Image references: Docker's grammar, normalization and familiar display.

This module owns the meaning of strings like ``busybox``,
``localhost:5000/x:1`` and ``name@sha256:<hex>``: parsing them the way
Docker's ``distribution/reference`` package does (the same regular
expressions, the same normalization to ``docker.io/library/...``, the same
error messages) and turning them back into the short "familiar" form the CLI
shows.  Pure functions, no I/O; the image store decides what a reference
points at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockerpy.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of github.com/distribution/reference (regexp.go), kept as the
# same building blocks so a reader can compare them line by line.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_NAME_COMPONENT + r"(?:\." + _DOMAIN_NAME_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6_ADDRESS + r")"
_DOMAIN = _HOST + r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(
    r"^(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$", re.ASCII)
_ANCHORED_NAME_RE = re.compile(
    r"^(?:(" + _DOMAIN + r")/)?(" + _REMOTE_NAME + r")$", re.ASCII)
_ANCHORED_TAG_RE = re.compile(r"^" + _TAG + r"$", re.ASCII)
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_HEX_RE = re.compile(r"^[a-f0-9]+$")

# go-digest: algorithm -> length of the hex encoding.
_DIGEST_SIZES = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A parsed reference.

    ``domain`` and ``path`` are empty for a digest-only reference (an image
    id written ``sha256:<hex>``); ``tag`` and ``digest`` are ``None`` when
    absent.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def is_digest_only(self) -> bool:
        return not self.path

    @property
    def is_name_only(self) -> bool:
        return bool(self.path) and self.tag is None and self.digest is None

    def __str__(self) -> str:
        s = self.name
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s = s + "@" + self.digest if s else self.digest
        return s


def _validate_digest(s: str) -> str:
    """Validate ``algorithm:hex`` as go-digest's ``Parse`` does.

    :raises InvalidParameter: with go-digest's wording.
    """
    i = s.find(":")
    if i <= 0 or i + 1 == len(s):
        raise InvalidParameter("invalid checksum digest format")
    algorithm, encoded = s[:i], s[i + 1:]
    size = _DIGEST_SIZES.get(algorithm)
    if size is None:
        raise InvalidParameter("unsupported digest algorithm")
    if len(encoded) != size:
        raise InvalidParameter("invalid checksum digest length")
    if not _HEX_RE.match(encoded):
        raise InvalidParameter("invalid checksum digest format")
    return s


def parse(s: str) -> Reference:
    """Parse a reference without normalizing it (Go's ``reference.Parse``).

    :raises InvalidParameter: the string is not a reference.
    """
    m = _REFERENCE_RE.match(s)
    if m is None:
        if s == "":
            raise InvalidParameter("repository name must have at least one component")
        if _REFERENCE_RE.match(s.lower()) is not None:
            raise InvalidParameter("repository name must be lowercase")
        raise InvalidParameter("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    nm = _ANCHORED_NAME_RE.match(name)
    domain, path = (nm.group(1) or "", nm.group(2)) if nm else ("", name)
    if digest is not None:
        _validate_digest(digest)
    return Reference(domain, path, tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i]
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_normalized_named(s: str) -> Reference:
    """Parse a user-supplied name into its full form (``ParseNormalizedNamed``).

    ``busybox`` becomes ``docker.io/library/busybox`` (no tag is added: see
    :func:`tag_name_only`).

    :raises InvalidParameter: with the message Docker gives.
    """
    if _IDENTIFIER_RE.match(s):
        raise InvalidParameter(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    tag_sep = remainder.find(":")
    remote_name = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote_name.lower() != remote_name:
        raise InvalidParameter(
            f"invalid reference format: repository name ({remote_name}) must be lowercase")
    ref = parse(domain + "/" + remainder)
    if ref.is_digest_only:
        raise InvalidParameter(f"reference {ref} has no name")
    return ref


def parse_any_reference(s: str) -> Reference:
    """Parse an image name *or* an image id (``ParseAnyReference``).

    A bare 64-hex string or ``sha256:<hex>`` gives a digest-only reference
    (``domain`` and ``path`` empty); anything else is normalized.
    """
    if _IDENTIFIER_RE.match(s):
        return Reference("", "", None, "sha256:" + s)
    try:
        digest = _validate_digest(s)
    except InvalidParameter:
        return parse_normalized_named(s)
    return Reference("", "", None, digest)


def tag_name_only(ref: Reference) -> Reference:
    """Add the ``latest`` tag to a reference that has neither tag nor digest."""
    return replace(ref, tag=DEFAULT_TAG) if ref.is_name_only else ref


def with_tag(ref: Reference, tag: str) -> Reference:
    """Replace the tag (and drop any digest, as ``WithTag(TrimNamed(..))``).

    :raises InvalidParameter: ``invalid tag format``.
    """
    if not _ANCHORED_TAG_RE.match(tag):
        raise InvalidParameter("invalid tag format")
    return Reference(ref.domain, ref.path, tag, None)


def familiar_name(ref: Reference) -> str:
    """The repository name as users write it: ``busybox``, ``user/app``, ``host:5000/x``."""
    domain, path = ref.domain, ref.path
    if domain == DEFAULT_DOMAIN:
        domain = ""
        if path.startswith(OFFICIAL_REPO_PREFIX):
            rest = path[len(OFFICIAL_REPO_PREFIX):]
            if "/" not in rest:
                path = rest
    return f"{domain}/{path}" if domain else path


def familiar(ref: Reference | str) -> str:
    """The reference as the docker CLI shows it (``busybox:latest``).

    A string is parsed with :func:`parse_any_reference` first.
    """
    if isinstance(ref, str):
        ref = parse_any_reference(ref)
    if ref.is_digest_only:
        return ref.digest or ""
    s = familiar_name(ref)
    if ref.tag is not None:
        s += ":" + ref.tag
    if ref.digest is not None:
        s += "@" + ref.digest
    return s


def repo_tag_reference(repo: str, tag: str | None) -> Reference:
    """The ``name:tag`` a tag/import/commit request names (``RepoTagReference``).

    :raises InvalidParameter: the repository is a digest reference, or
        either part is malformed.
    """
    ref = parse_normalized_named(repo)
    if ref.digest is not None:
        raise InvalidParameter("cannot import digest reference")
    if tag:
        return with_tag(ref, tag)
    return tag_name_only(ref)
