"""dockerpy.filters: the filter-key check every list and prune shares, and
Docker's label, path and reference matching."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from dockerpy import errors
from dockerpy.containers import filters as container_filters
from dockerpy.filters import check_keys, label_match, path_match, reference_match


class CheckKeysTests(SynchronousTestCase):
    def test_an_unknown_key_is_dockers_400(self):
        check_keys({"label": ["a"], "all": ["1"]}, {"label", "all"})
        e = self.assertRaises(errors.InvalidParameter, check_keys,
                              {"label": ["a"], "bogus": ["x"]}, {"label"})
        self.assertEqual(e.message, "invalid filter 'bogus'")
        self.assertEqual(e.status, 400)

    def test_container_list_and_prune_refuse_keys_of_the_other(self):
        # "until" prunes but does not list; "status" lists but does not prune.
        e = self.assertRaises(errors.InvalidParameter, container_filters.matches_list,
                              object(), {"until": ["1h"]}, lambda ref, image: True)
        self.assertEqual(e.message, "invalid filter 'until'")
        e = self.assertRaises(errors.InvalidParameter, container_filters.matches_prune,
                              object(), {"status": ["exited"]}, 0.0)
        self.assertEqual(e.message, "invalid filter 'status'")


class MatchTests(SynchronousTestCase):
    def test_labels_by_key_or_key_and_value(self):
        labels = {"a": "1", "b": ""}
        self.assertTrue(label_match(labels, ["a", "a=1", "b"]))
        self.assertFalse(label_match(labels, ["a=2"]))
        self.assertFalse(label_match(labels, ["c"]))

    def test_path_globs_never_cross_a_slash(self):
        self.assertTrue(path_match("lib/*", "lib/busybox"))
        self.assertFalse(path_match("*", "lib/busybox"))
        self.assertTrue(path_match("b?sybox", "busybox"))

    def test_reference_matches_the_name_without_its_tag(self):
        self.assertTrue(reference_match("busybox:1", ["busybox"]))
        self.assertTrue(reference_match("busybox:1", ["busybox:*"]))
        self.assertFalse(reference_match("busybox:1", ["alpine"]))
