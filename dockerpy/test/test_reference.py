# -*- test-case-name: dockerpy.test.test_reference -*-
"""Tests for dockerpy.images.reference: Docker's reference grammar."""

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.errors import InvalidParameter
from dockerpy.images import reference as r
from dockerpy.images.reference import Reference

HEX = "a" * 64


class NormalizeTests(SynchronousTestCase):
    def test_official_image_gets_docker_io_library(self) -> None:
        self.assertEqual(r.parse_normalized_named("busybox"),
                         Reference("docker.io", "library/busybox"))

    def test_tag_name_only_adds_latest(self) -> None:
        ref = r.tag_name_only(r.parse_normalized_named("busybox"))
        self.assertEqual(str(ref), "docker.io/library/busybox:latest")

    def test_user_repository_keeps_its_namespace(self) -> None:
        self.assertEqual(str(r.parse_normalized_named("user/app:1.0")),
                         "docker.io/user/app:1.0")

    def test_legacy_index_domain_becomes_docker_io(self) -> None:
        self.assertEqual(str(r.parse_normalized_named("index.docker.io/busybox")),
                         "docker.io/library/busybox")

    def test_host_port_is_a_domain(self) -> None:
        ref = r.parse_normalized_named("localhost:5000/x:1")
        self.assertEqual((ref.domain, ref.path, ref.tag), ("localhost:5000", "x", "1"))

    def test_localhost_without_port_is_a_domain(self) -> None:
        self.assertEqual(r.parse_normalized_named("localhost/x").domain, "localhost")

    def test_dotted_first_component_is_a_domain(self) -> None:
        ref = r.parse_normalized_named("quay.io/org/app")
        self.assertEqual((ref.domain, ref.path), ("quay.io", "org/app"))

    def test_digest_reference(self) -> None:
        ref = r.parse_normalized_named(f"busybox@sha256:{HEX}")
        self.assertEqual((ref.tag, ref.digest), (None, "sha256:" + HEX))

    def test_tag_and_digest(self) -> None:
        ref = r.parse_normalized_named(f"busybox:1@sha256:{HEX}")
        self.assertEqual((ref.tag, ref.digest), ("1", "sha256:" + HEX))

    def test_uppercase_repository_is_rejected_with_dockers_words(self) -> None:
        e = self.assertRaises(InvalidParameter, r.parse_normalized_named, "Busybox")
        self.assertEqual(str(e), "invalid reference format: repository name "
                                 "(library/Busybox) must be lowercase")

    def test_uppercase_tag_is_allowed(self) -> None:
        self.assertEqual(r.parse_normalized_named("busybox:Latest").tag, "Latest")

    def test_garbage_is_invalid_reference_format(self) -> None:
        for bad in ("busy box", "busybox:", ":tag", "a//b", "-x", "x:" + "t" * 129):
            e = self.assertRaises(InvalidParameter, r.parse_normalized_named, bad)
            self.assertEqual(str(e), "invalid reference format", bad)

    def test_64_hex_cannot_be_a_repository(self) -> None:
        e = self.assertRaises(InvalidParameter, r.parse_normalized_named, HEX)
        self.assertIn("cannot specify 64-byte hexadecimal strings", str(e))

    def test_bad_digest_length(self) -> None:
        e = self.assertRaises(InvalidParameter, r.parse_normalized_named,
                              "busybox@sha256:" + "a" * 63)
        self.assertEqual(str(e), "invalid checksum digest length")

    def test_too_long_name(self) -> None:
        e = self.assertRaises(InvalidParameter, r.parse_normalized_named, "a" * 256)
        self.assertIn("must not be more than 255 characters", str(e))


class AnyReferenceTests(SynchronousTestCase):
    def test_bare_hex_id_is_a_digest(self) -> None:
        ref = r.parse_any_reference(HEX)
        self.assertTrue(ref.is_digest_only)
        self.assertEqual(ref.digest, "sha256:" + HEX)

    def test_prefixed_id_is_a_digest(self) -> None:
        self.assertEqual(r.parse_any_reference("sha256:" + HEX).digest, "sha256:" + HEX)

    def test_short_id_is_a_name(self) -> None:
        self.assertEqual(str(r.parse_any_reference("abc123")), "docker.io/library/abc123")


class FamiliarTests(SynchronousTestCase):
    def test_official(self) -> None:
        self.assertEqual(r.familiar("docker.io/library/busybox:latest"), "busybox:latest")

    def test_user_repo(self) -> None:
        self.assertEqual(r.familiar("docker.io/user/app:1"), "user/app:1")

    def test_nested_library_path_keeps_library(self) -> None:
        self.assertEqual(r.familiar("docker.io/library/a/b"), "library/a/b")

    def test_other_registry(self) -> None:
        self.assertEqual(r.familiar("localhost:5000/x:1"), "localhost:5000/x:1")

    def test_digest(self) -> None:
        self.assertEqual(r.familiar(f"busybox@sha256:{HEX}"), f"busybox@sha256:{HEX}")

    def test_id(self) -> None:
        self.assertEqual(r.familiar("sha256:" + HEX), "sha256:" + HEX)


class RepoTagTests(SynchronousTestCase):
    def test_default_tag(self) -> None:
        self.assertEqual(str(r.repo_tag_reference("busybox", None)),
                         "docker.io/library/busybox:latest")

    def test_explicit_tag_replaces(self) -> None:
        self.assertEqual(r.repo_tag_reference("busybox:1", "2").tag, "2")

    def test_bad_tag(self) -> None:
        e = self.assertRaises(InvalidParameter, r.repo_tag_reference, "busybox", "-bad")
        self.assertEqual(str(e), "invalid tag format")

    def test_digest_rejected(self) -> None:
        e = self.assertRaises(InvalidParameter, r.repo_tag_reference,
                              f"busybox@sha256:{HEX}", None)
        self.assertEqual(str(e), "cannot import digest reference")
