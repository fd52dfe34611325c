# -*- test-case-name: dockerpy.test.test_client_format -*-
"""Tests for dockerpy.client.format: tables, sizes, durations, templates,
stdcopy framing (no daemon needed)."""

import io

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.client.containers import ContainerContext, displayable_ports
from dockerpy.client.format import (
    Template, TemplateError, demux, ellipsis, frame, go_quote, human_duration, human_size,
    tabwrite, truncate_id)


class TabwriteTests(SynchronousTestCase):
    def test_columns_padded_by_three_with_minimum_ten(self):
        text = tabwrite("REPOSITORY\tTAG\tSIZE\nbusybox\tlatest\t4.26MB\n")
        self.assertEqual(text, "REPOSITORY   TAG       SIZE\n"
                               "busybox      latest    4.26MB\n")

    def test_last_cell_is_not_padded_but_empty_terminated_cells_are(self):
        text = tabwrite("A\tB\nxx\t\t\n")
        self.assertEqual(text, "A" + " " * 9 + "B\n" + "xx" + " " * 18 + "\n")

    def test_minwidth_twenty_for_top(self):
        self.assertEqual(tabwrite("PID\tCMD\n1\tsh\n", minwidth=20),
                         "PID                 CMD\n1                   sh\n")

    def test_line_without_tabs_breaks_column_block(self):
        self.assertEqual(tabwrite("a\tb\nno-tabs-here\nlonger-cell\tc\n"),
                         "a         b\nno-tabs-here\nlonger-cell   c\n")


class UnitsTests(SynchronousTestCase):
    def test_human_size_decimal_precision_three(self):
        self.assertEqual(human_size(4260000), "4.26MB")
        self.assertEqual(human_size(0), "0B")
        self.assertEqual(human_size(999), "999B")
        self.assertEqual(human_size(1000), "1kB")
        self.assertEqual(human_size(999999), "1e+03kB")

    def test_human_size_precision_four_for_reclaimed_space(self):
        self.assertEqual(human_size(12345, 4), "12.35kB")

    def test_human_duration_thresholds(self):
        cases = [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
                 (60, "About a minute"), (119, "About a minute"), (120, "2 minutes"),
                 (3599, "59 minutes"), (3600, "About an hour"), (2 * 3600, "2 hours"),
                 (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (15 * 86400, "2 weeks"),
                 (61 * 86400, "2 months"), (3 * 365 * 86400, "3 years")]
        for seconds, expected in cases:
            self.assertEqual(human_duration(seconds), expected, seconds)

    def test_truncate_id_drops_algorithm(self):
        self.assertEqual(truncate_id("sha256:0123456789abcdef"), "0123456789ab")

    def test_ellipsis_and_quote_as_ps_command(self):
        self.assertEqual(go_quote(ellipsis("sh -c 'sleep 1000 && echo hi'", 20)),
                         "\"sh -c 'sleep 1000 &…\"")
        self.assertEqual(go_quote('a"b\n'), '"a\\"b\\n"')


INSPECT = {"Id": "c1full", "Name": "/c1",
           "State": {"Running": True, "Health": None, "Pid": 0},
           "Config": {"Labels": {"k": "v", "a": "b"}, "Cmd": ["sh", "-c", "x"],
                      "Entrypoint": None, "ExposedPorts": {}},
           "HostConfig": None, "SizeRw": 1}


class TemplateTests(SynchronousTestCase):
    def render(self, source, data=INSPECT):
        return Template(source).render(data)

    def test_go_values_render_as_docker_inspect_prints_them(self):
        self.assertEqual(
            self.render("{{.State.Running}} {{.Config.Labels}} {{.Config.Cmd}} "
                        "{{.Config.Entrypoint}} {{.State.Health}} {{.SizeRw}} "
                        "{{.Config.ExposedPorts}} {{.HostConfig}}"),
            "true map[a:b k:v] [sh -c x] [] <nil> 1 map[] <nil>")

    def test_json_sorts_go_maps_only(self):
        self.assertEqual(self.render("{{json .Config.Labels}}"), '{"a":"b","k":"v"}')
        self.assertEqual(self.render("{{json .State}}"),
                         '{"Running":true,"Health":null,"Pid":0}')
        self.assertEqual(self.render("{{.Config.Cmd | json}}"), '["sh","-c","x"]')

    def test_index_range_if_functions(self):
        self.assertEqual(self.render('{{index .Config.Labels "k"}}|{{index .Config.Labels "z"}}'),
                         "v|")
        self.assertEqual(self.render("{{range .Config.Cmd}}<{{.}}>{{end}}"), "<sh><-c><x>")
        self.assertEqual(self.render("{{if .State.Running}}up{{else}}down{{end}}"), "up")
        self.assertEqual(self.render('{{join .Config.Cmd ","}} {{upper .Name}} '
                                     "{{len .Config.Cmd}}"), "sh,-c,x /C1 3")
        self.assertEqual(self.render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
                         "a=b;k=v;")
        self.assertEqual(self.render("{{- .Name -}} "), "/c1")

    def test_missing_key_fails_with_docker_message(self):
        e = self.assertRaises(TemplateError, self.render, "{{.Config.Nope.Deeper}}")
        self.assertEqual(str(e), 'template: :1:9: executing "" at <.Config.Nope.Deeper>: '
                                 'map has no entry for key "Nope"')

    def test_unclosed_action(self):
        e = self.assertRaises(TemplateError, Template, "{{.State.Foo")
        self.assertEqual(str(e), "template: :1: unclosed action")

    def test_context_methods_and_json_dot(self):
        c = ContainerContext({"Id": "0123456789abcdef", "Names": ["/foo"], "Image": "busybox",
                              "Command": "sh", "Created": 0, "Labels": {"b": "2", "a": "1"},
                              "State": "running", "Status": "Up 1 second"}, now=10)
        self.assertEqual(Template('{{.ID}} {{.Names}} {{.Label "a"}} {{.Labels}}').render(c),
                         "0123456789ab foo 1 a=1,b=2")
        self.assertIn('"RunningFor":"10 seconds ago"', Template("{{json .}}").render(c))


class PortsTests(SynchronousTestCase):
    def test_ports_grouped_and_host_mappings_last(self):
        ports = [{"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                 {"PrivatePort": 80, "Type": "tcp"},
                 {"PrivatePort": 81, "Type": "tcp"},
                 {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                 {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 53, "Type": "udp"}]
        self.assertEqual(displayable_ports(ports),
                         "0.0.0.0:53->53/udp, 80-81/tcp, 0.0.0.0:8080->80/tcp, "
                         "[::]:8080->80/tcp")


class DemuxTests(SynchronousTestCase):
    def test_frames_split_to_stdout_and_stderr(self):
        data = io.BytesIO(frame(1, b"out1 ") + frame(2, b"err") + frame(1, b"out2"))
        out, err = io.BytesIO(), io.BytesIO()
        demux(data.read, out, err)
        self.assertEqual((out.getvalue(), err.getvalue()), (b"out1 out2", b"err"))

    def test_truncated_frame_stops_quietly(self):
        out, err = io.BytesIO(), io.BytesIO()
        demux(io.BytesIO(frame(1, b"abc")[:6]).read, out, err)
        self.assertEqual(out.getvalue(), b"")
