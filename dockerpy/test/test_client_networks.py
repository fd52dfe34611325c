# -*- test-case-name: dockerpy.test.test_client_networks -*-
"""Tests for ``docker network ...``, ``docker port`` and the networking
flags of run/create, against the fake Engine API: request shapes, output,
exit statuses; and a comparison with the real docker CLI's create body."""

import json
import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.client.networks import go_time_string, natural_key
from dockerpy.client.testing import Reply
from dockerpy.test.test_client_main import EngineTestCase

DOCKER_CLI = os.environ.get("DOCKERPY_TEST_CLI", "/usr/local/bin/docker")

BRIDGE = {"Name": "bridge", "Id": "a" * 64, "Created": "2026-11-27T16:00:00.123456789Z",
          "Scope": "local", "Driver": "bridge", "EnableIPv4": True, "EnableIPv6": False,
          "Internal": False, "Labels": {"x": "y", "a": "b"}}
FOO = {"Name": "foo", "Id": "b" * 64, "Created": "2026-11-27T17:00:00+01:00",
       "Scope": "local", "Driver": "bridge", "EnableIPv6": True, "Internal": True,
       "Labels": {}}


class HelperTests(SynchronousTestCase):
    def test_natural_order_compares_digit_runs_as_numbers(self):
        names = ["net10", "net9", "bridge", "net09", "a", "net1x"]
        self.assertEqual(sorted(names, key=natural_key),
                         ["a", "bridge", "net1x", "net9", "net09", "net10"])

    def test_go_time_string_keeps_nanoseconds_and_zone(self):
        self.assertEqual(go_time_string("2026-11-27T16:00:00.123456789Z"),
                         "2026-11-27 16:00:00.123456789 +0000 UTC")
        self.assertEqual(go_time_string("2026-11-27T16:00:00.500Z"),
                         "2026-11-27 16:00:00.5 +0000 UTC")
        self.assertEqual(go_time_string("2026-11-27T17:00:00+01:00"),
                         "2026-11-27 17:00:00 +0100 +0100")


class NetworkCreateTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("POST", "/networks/create", Reply(201, {"Id": "c" * 64,
                                                                  "Warning": ""}))

    def body(self):
        return self.engine.calls("POST", "/networks/create")[0].json()

    def test_plain_create_sends_docker_defaults_and_prints_id(self):
        self.assertEqual(self.cli("network", "create", "foo"), (0, "c" * 64 + "\n", ""))
        self.assertEqual(self.body(), {
            "Driver": "bridge", "Scope": "",
            "IPAM": {"Driver": "default", "Options": {}, "Config": []},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigOnly": False,
            "ConfigFrom": None, "Options": {}, "Labels": {}, "Name": "foo"})

    def test_all_flags(self):
        rc, out, err = self.cli(
            "network", "create", "-d", "bridge", "--subnet", "10.1.0.0/24",
            "--gateway", "10.1.0.1", "--ip-range", "10.1.0.128/25", "--internal",
            "--label", "a=b", "--label", "c", "-o", "com.docker.network.bridge.name=br0",
            "--attachable", "--ipv6", "foo")
        self.assertEqual((rc, err), (0, ""))
        body = self.body()
        self.assertEqual(body["IPAM"]["Config"], [
            {"Subnet": "10.1.0.0/24", "IPRange": "10.1.0.128/25", "Gateway": "10.1.0.1"}])
        self.assertEqual((body["EnableIPv6"], body["Internal"], body["Attachable"]),
                         (True, True, True))
        self.assertNotIn("EnableIPv4", body)
        self.assertEqual(body["Labels"], {"a": "b", "c": ""})
        self.assertEqual(body["Options"], {"com.docker.network.bridge.name": "br0"})

    def test_ipv4_and_ipv6_sent_only_when_given(self):
        self.assertEqual(self.cli("network", "create", "--ipv4=false", "--ipv6=false",
                                  "x")[0], 0)
        body = self.body()
        self.assertEqual((body["EnableIPv4"], body["EnableIPv6"]), (False, False))

    def test_gateway_goes_to_its_subnet(self):
        self.cli("network", "create", "--subnet", "10.1.0.0/24", "--subnet", "10.2.0.0/24",
                 "--gateway", "10.2.0.1", "x")
        self.assertEqual(self.body()["IPAM"]["Config"], [
            {"Subnet": "10.1.0.0/24"}, {"Subnet": "10.2.0.0/24", "Gateway": "10.2.0.1"}])

    def test_ipam_errors_exit_1_without_request(self):
        cases = [
            (["--gateway", "10.1.0.1"],
             "every ip-range or gateway must have a corresponding subnet"),
            (["--subnet", "10.1.0.0/24", "--gateway", "10.9.0.1"],
             "no matching subnet for gateway 10.9.0.1"),
            (["--subnet", "10.1.0.0/24", "--ip-range", "10.9.0.0/25"],
             "no matching subnet for range 10.9.0.0/25"),
            (["--subnet", "10.1.0.0/24", "--subnet", "10.1.0.0/16"],
             "multiple overlapping subnet configuration is not supported"),
            (["--subnet", "bogus", "--subnet", "10.0.0.0/8"],
             "invalid subnet: invalid CIDR address: bogus"),
            (["--subnet", "10.1.0.0/24", "--subnet", "10.2.0.0/24", "--ip-range",
              "10.1.0.0/25", "--ip-range", "10.1.0.128/25"],
             "cannot configure multiple ranges (10.1.0.128/25, 10.1.0.0/25) on the same "
             "subnet (10.1.0.0/24)"),
        ]
        for flags, message in cases:
            self.assertEqual(self.cli("network", "create", *flags, "x"),
                             (1, "", message + "\n"), flags)
        self.assertEqual(self.engine.calls("POST"), [])

    def test_requires_exactly_one_name(self):
        rc, out, err = self.cli("network", "create")
        self.assertEqual((rc, err), (1, "docker: 'docker network create' requires 1 argument"
                                        "\n\nUsage:  docker network create [OPTIONS] NETWORK"
                                        "\n\nRun 'docker network create --help' for more "
                                        "information\n"))

    def test_daemon_error(self):
        self.engine.route("POST", "/networks/create",
                          Reply(409, {"message": "network with name foo already exists"}))
        self.assertEqual(self.cli("network", "create", "foo"), (
            1, "", "Error response from daemon: network with name foo already exists\n"))


class NetworkListTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        extra = dict(BRIDGE, Name="net10", Id="d" * 64)
        self.engine.route("GET", "/networks", [extra, FOO, BRIDGE])

    def test_table_sorted_by_name_with_short_ids(self):
        self.assertEqual(self.cli("network", "ls"), (0, (
            "NETWORK ID     NAME      DRIVER    SCOPE\n"
            "aaaaaaaaaaaa   bridge    bridge    local\n"
            "bbbbbbbbbbbb   foo       bridge    local\n"
            "dddddddddddd   net10     bridge    local\n"), ""))

    def test_quiet_and_no_trunc(self):
        self.assertEqual(self.cli("network", "ls", "-q")[1],
                         "aaaaaaaaaaaa\nbbbbbbbbbbbb\ndddddddddddd\n")
        self.assertEqual(self.cli("network", "list", "-q", "--no-trunc")[1],
                         "a" * 64 + "\n" + "b" * 64 + "\n" + "d" * 64 + "\n")

    def test_filters_are_sent_sorted(self):
        self.cli("network", "ls", "-f", "name=foo", "-f", "driver=bridge")
        self.assertEqual(self.engine.calls("GET", "/networks$")[0].query,
                         {"filters": ['{"driver":{"bridge":true},"name":{"foo":true}}']})

    def test_bad_filter_is_a_usage_error(self):
        rc, out, err = self.cli("network", "ls", "-f", "bad")
        self.assertEqual(rc, 125)
        self.assertTrue(err.startswith('invalid argument "bad" for "-f, --filter" flag: bad '
                                       'format of filter (expected name=value)\n\nUsage:  '
                                       'docker network ls [OPTIONS]\n'), err)

    def test_format_fields_and_json(self):
        rc, out, err = self.cli("network", "ls", "--format",
                                "{{.Name}}|{{.IPv4}}|{{.IPv6}}|{{.Internal}}|{{.Labels}}|"
                                "{{.CreatedAt}}|{{.Label \"x\"}}")
        self.assertEqual(out.splitlines()[:2], [
            "bridge|true|false|false|a=b,x=y|2026-11-27 16:00:00.123456789 +0000 UTC|y",
            "foo|false|true|true||2026-11-27 17:00:00 +0100 +0100|"])
        rc, out, err = self.cli("network", "ls", "--format", "json")
        self.assertEqual(json.loads(out.splitlines()[1]), {
            "CreatedAt": "2026-11-27 17:00:00 +0100 +0100", "Driver": "bridge",
            "ID": "bbbbbbbbbbbb", "IPv4": "false", "IPv6": "true", "Internal": "true",
            "Labels": "", "Name": "foo", "Scope": "local"})

    def test_rejects_arguments(self):
        self.assertEqual(self.cli("network", "ls", "x")[0], 1)


class NetworkInspectTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("GET", "/networks/foo", FOO)
        self.engine.route("GET", "/networks/nope",
                          Reply(404, {"message": "network nope not found"}))

    def test_json_array_in_daemon_order(self):
        rc, out, err = self.cli("network", "inspect", "foo")
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, json.dumps([FOO], indent=4) + "\n")
        self.assertEqual(self.engine.calls("GET")[0].query, {})

    def test_format_and_missing_network(self):
        rc, out, err = self.cli("network", "inspect", "-f", "{{.Name}}:{{.Internal}}",
                                "foo", "nope")
        self.assertEqual((rc, out, err), (1, "foo:true\n", "Error response from daemon: "
                                                           "network nope not found\n"))
        self.assertEqual(self.cli("network", "inspect", "nope")[:2], (1, "[]\n"))

    def test_json_format_is_compact(self):
        self.assertEqual(self.cli("network", "inspect", "-f", "json", "foo"),
                         (0, json.dumps([FOO], separators=(",", ":")) + "\n", ""))

    def test_verbose_query(self):
        self.cli("network", "inspect", "-v", "foo")
        self.assertEqual(self.engine.calls("GET")[0].query, {"verbose": ["true"]})


class NetworkRemoveTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("GET", "/networks/foo", FOO)
        self.engine.route("DELETE", "/networks/foo", Reply(204))
        for verb in ("GET", "DELETE"):
            self.engine.route(verb, "/networks/nope",
                              Reply(404, {"message": "network nope not found"}))

    def test_removes_each_and_reports_failures(self):
        self.assertEqual(self.cli("network", "rm", "foo", "nope", "foo"), (
            1, "foo\nfoo\n", "Error response from daemon: network nope not found\n"
                             "exit status 1\n"))
        self.assertEqual([(r.method, r.path.split("/", 2)[2]) for r in self.engine.calls()], [
            ("GET", "networks/foo"), ("DELETE", "networks/foo"),
            ("GET", "networks/nope"), ("DELETE", "networks/nope"),
            ("GET", "networks/foo"), ("DELETE", "networks/foo")])

    def test_force_ignores_missing(self):
        self.assertEqual(self.cli("network", "remove", "-f", "nope"), (0, "", ""))

    def test_in_use_is_reported_even_with_force(self):
        self.engine.route("DELETE", "/networks/foo", Reply(403, {
            "message": "error while removing network: network foo id bbb has active "
                       "endpoints"}))
        rc, out, err = self.cli("network", "rm", "-f", "foo")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("has active endpoints", err)

    def test_requires_a_name(self):
        rc, out, err = self.cli("network", "rm")
        self.assertEqual(rc, 1)
        self.assertIn("'docker network rm' requires at least 1 argument", err)


class NetworkConnectTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("POST", "/networks/foo/connect", Reply(200))
        self.engine.route("POST", "/networks/foo/disconnect", Reply(200))

    def test_connect_plain(self):
        self.assertEqual(self.cli("network", "connect", "foo", "c1"), (0, "", ""))
        body = self.engine.calls("POST", "connect")[0].json()
        self.assertEqual(body["Container"], "c1")
        ep = body["EndpointConfig"]
        self.assertEqual((ep["IPAMConfig"], ep["Links"], ep["Aliases"], ep["DriverOpts"]),
                         ({}, None, [], {}))

    def test_connect_with_options(self):
        self.cli("network", "connect", "--alias", "a", "--alias", "b", "--ip", "10.1.0.5",
                 "--ip6", "fd00::5", "--link", "x:y", "--driver-opt", "k=v",
                 "--link-local-ip", "169.254.1.1", "foo", "c1")
        ep = self.engine.calls("POST", "connect")[0].json()["EndpointConfig"]
        self.assertEqual(ep["IPAMConfig"], {"IPv4Address": "10.1.0.5", "IPv6Address": "fd00::5",
                                            "LinkLocalIPs": ["169.254.1.1"]})
        self.assertEqual((ep["Links"], ep["Aliases"], ep["DriverOpts"]),
                         (["x:y"], ["a", "b"], {"k": "v"}))

    def test_connect_error(self):
        self.engine.route("POST", "/networks/foo/connect", Reply(404, {
            "message": "No such container: c9"}))
        self.assertEqual(self.cli("network", "connect", "foo", "c9"),
                         (1, "", "Error response from daemon: No such container: c9\n"))

    def test_connect_needs_two_arguments(self):
        rc, out, err = self.cli("network", "connect", "foo")
        self.assertEqual((rc, err.splitlines()[0]),
                         (1, "docker: 'docker network connect' requires 2 arguments"))

    def test_disconnect_force(self):
        self.assertEqual(self.cli("network", "disconnect", "foo", "c1"), (0, "", ""))
        self.assertEqual(self.cli("network", "disconnect", "-f", "foo", "c1"), (0, "", ""))
        self.assertEqual([r.json() for r in self.engine.calls("POST", "disconnect")],
                         [{"Container": "c1", "Force": False},
                          {"Container": "c1", "Force": True}])


class NetworkPruneTests(EngineTestCase):
    WARNING = ("WARNING! This will remove all custom networks not used by at least one "
               "container.\nAre you sure you want to continue? [y/N] ")

    def setUp(self):
        super().setUp()
        self.engine.route("POST", "/networks/prune", {"NetworksDeleted": ["n1", "n2"]})

    def test_prompt_declined_sends_nothing(self):
        self.assertEqual(self.cli("network", "prune", stdin=b"n\n"), (0, self.WARNING, ""))
        self.assertEqual(self.engine.calls("POST"), [])

    def test_prompt_accepted(self):
        self.assertEqual(self.cli("network", "prune", stdin=b"y\n"),
                         (0, self.WARNING + "Deleted Networks:\nn1\nn2\n\n", ""))

    def test_force_with_filters(self):
        rc, out, err = self.cli("network", "prune", "-f", "--filter", "until=1h",
                                "--filter", "label=a")
        self.assertEqual((rc, out), (0, "Deleted Networks:\nn1\nn2\n\n"))
        self.assertEqual(self.engine.calls("POST")[0].query,
                         {"filters": ['{"label":{"a":true},"until":{"1h":true}}']})

    def test_nothing_deleted_prints_nothing(self):
        self.engine.route("POST", "/networks/prune", {"NetworksDeleted": None})
        self.assertEqual(self.cli("network", "prune", "-f"), (0, "", ""))


class PortTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("GET", "/containers/c1/json", {"Id": "abc", "NetworkSettings": {
            "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                                 {"HostIp": "::", "HostPort": "8080"}],
                      "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
                      "443/tcp": None}}})

    def test_all_mappings_in_natural_order(self):
        self.assertEqual(self.cli("port", "c1"), (0, "53/udp -> 127.0.0.1:5353\n"
                                                     "80/tcp -> 0.0.0.0:8080\n"
                                                     "80/tcp -> [::]:8080\n", ""))
        self.assertEqual(self.cli("container", "port", "c1")[0], 0)

    def test_one_port(self):
        self.assertEqual(self.cli("port", "c1", "80"), (0, "0.0.0.0:8080\n[::]:8080\n", ""))
        self.assertEqual(self.cli("port", "c1", "53/udp"), (0, "127.0.0.1:5353\n", ""))

    def test_unpublished_and_invalid_ports(self):
        self.assertEqual(self.cli("port", "c1", "443"),
                         (1, "", "Error: No public port '443' published for c1\n"))
        self.assertEqual(self.cli("port", "c1", "80/udp"),
                         (1, "", "Error: No public port '80/udp' published for c1\n"))
        self.assertEqual(self.cli("port", "c1", "abc"), (1, "", (
            'Error: invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax\n')))
        self.assertEqual(self.cli("port", "c1", "70000")[2], (
            'Error: invalid port (70000): strconv.ParseUint: parsing "70000": value out of '
            'range\n'))

    def test_argument_count(self):
        rc, out, err = self.cli("port")
        self.assertEqual((rc, err.splitlines()[0]), (
            1, "docker: 'docker port' requires at least 1 and at most 2 arguments"))

    def test_missing_container(self):
        self.engine.route("GET", "/containers/nope/json",
                          Reply(404, {"message": "No such container: nope"}))
        self.assertEqual(self.cli("port", "nope"),
                         (1, "", "Error response from daemon: No such container: nope\n"))


def _endpoint(**fields):
    ep = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
          "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
          "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
          "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
    ep.update(fields)
    return ep


class RunNetworkFlagTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("POST", "/containers/create", Reply(201, {"Id": "abc",
                                                                    "Warnings": []}))

    def create(self, *flags):
        del self.engine.requests[:]
        rc, out, err = self.cli("create", *flags, "busybox")
        self.assertEqual((rc, err), (0, ""))
        body = self.engine.calls("POST", "/containers/create")[0].json()
        return body["HostConfig"], body["NetworkingConfig"]["EndpointsConfig"]

    def test_user_network_with_alias_ip_and_links(self):
        host, eps = self.create("--network", "foo", "--network-alias", "a",
                                "--net-alias", "b", "--ip", "10.1.0.5", "--link", "c1:al")
        self.assertEqual((host["NetworkMode"], host["Links"]), ("foo", ["c1:al"]))
        self.assertEqual(eps, {"foo": _endpoint(IPAMConfig={"IPv4Address": "10.1.0.5"},
                                                Links=["c1:al"], Aliases=["a", "b"])})

    def test_default_network_always_has_an_endpoint(self):
        host, eps = self.create()
        self.assertEqual((host["NetworkMode"], eps), ("default", {"default": _endpoint()}))
        host, eps = self.create("--mac-address", "02:42:ac:11:00:02")
        self.assertEqual(eps, {"default": _endpoint(MacAddress="02:42:ac:11:00:02")})

    def test_lone_network_without_options_is_left_to_the_daemon(self):
        host, eps = self.create("--network", "foo")
        self.assertEqual((host["NetworkMode"], eps), ("foo", {}))
        host, eps = self.create("--link", "a:b", "--network", "bridge")
        self.assertEqual((host["NetworkMode"], host["Links"], eps), ("bridge", ["a:b"], {}))

    def test_several_networks_and_long_syntax(self):
        host, eps = self.create("--network", "foo", "--network",
                                "name=bar,alias=x,ip=10.0.0.2,driver-opt=K=V,gw-priority=3",
                                "--ip", "10.0.0.3")
        self.assertEqual(host["NetworkMode"], "foo")
        self.assertEqual(list(eps), ["bar", "foo"])
        self.assertEqual(eps["bar"], _endpoint(IPAMConfig={"IPv4Address": "10.0.0.2"},
                                               Aliases=["x"], DriverOpts={"k": "v"},
                                               GwPriority=3))
        self.assertEqual(eps["foo"], _endpoint(IPAMConfig={"IPv4Address": "10.0.0.3"}))

    def test_hostname_and_add_host(self):
        body_host, _ = self.create("-h", "myhost", "--add-host", "h:1.2.3.4")
        self.assertEqual(body_host["ExtraHosts"], ["h:1.2.3.4"])
        self.assertEqual(self.engine.calls("POST", "create")[0].json()["Hostname"], "myhost")

    def test_errors(self):
        cases = [
            (["--network-alias", "a"], "docker: network-scoped aliases are only supported "
                                       "for user-defined networks"),
            (["--network", "name=foo,driver-opt=x"], 'invalid argument "name=foo,driver-opt=x" '
             'for "--network" flag: invalid key value pair format in driver options'),
            (["--network", "foo", "--network", "host"], "docker: conflicting options: cannot "
             "attach both user-defined and non-user-defined network-modes"),
            (["--network", "foo", "--network", "foo"],
             'docker: network "foo" is specified multiple times'),
            (["--mac-address", "zz"], "docker: zz is not a valid mac address"),
            (["--network", "name=foo,alias=x", "--network-alias", "y"], "docker: conflicting "
             "options: cannot specify both --network-alias and per-network alias"),
            (["--network", "name=foo,bogus=1"], 'invalid argument "name=foo,bogus=1" for '
                                                '"--network" flag: invalid field key bogus'),
            (["--network", "alias=x"], 'invalid argument "alias=x" for "--network" flag: '
                                       'network name/id is not specified'),
        ]
        for flags, first_line in cases:
            rc, out, err = self.cli("container", "create", *flags, "busybox")
            self.assertEqual((rc, err.splitlines()[0]), (125, first_line), flags)
        rc, out, err = self.cli("container", "create", "--network-alias", "a", "busybox")
        self.assertEqual(err.splitlines()[-1], "Run 'docker create --help' for more "
                                               "information")
        self.assertEqual(self.engine.calls("POST"), [])


class RealCLIComparisonTests(EngineTestCase):
    """The docker CLI v28 and bin/docker send the same networking fields in
    ``POST /containers/create`` for the same flags."""

    FLAGS = [
        [],
        ["--network", "foo"],
        ["--network", "foo", "--network-alias", "a", "--network-alias", "b",
         "--ip", "10.1.0.5", "--link", "c1:al", "--link", "c2"],
        ["--ip", "10.1.0.5", "--mac-address", "02:42:ac:11:00:02", "-h", "hh",
         "--add-host", "h:1.2.3.4", "--link", "x:y"],
        ["--network", "foo", "--network", "bar", "--ip6", "fd00::3",
         "--link-local-ip", "169.254.0.5"],
        ["--network", "name=foo,alias=x,ip=10.0.0.2,mac-address=02:42:ac:11:00:03"],
        ["--network", "bridge", "--link", "a:b"],
        ["--network", "none"],
        ["--network", "host", "--link", "a"],
        ["--network", "container:abc"],
    ]

    def setUp(self):
        if not os.access(DOCKER_CLI, os.X_OK):
            raise self.skipTest(f"no docker CLI at {DOCKER_CLI}")
        super().setUp()
        self.engine.route("POST", "/containers/create", Reply(201, {"Id": "abc",
                                                                    "Warnings": []}))

    def networking(self):
        body = self.engine.calls("POST", "/containers/create")[-1].json()
        host = body["HostConfig"]
        return {"NetworkMode": host.get("NetworkMode"), "Links": host.get("Links"),
                "ExtraHosts": host.get("ExtraHosts"), "Hostname": body.get("Hostname"),
                "MacAddress": body.get("MacAddress"),
                "NetworkingConfig": body.get("NetworkingConfig")}

    def test_same_create_body(self):
        for flags in self.FLAGS:
            argv = ["create", *flags, "busybox"]
            result = subprocess.run(
                [DOCKER_CLI, *argv], capture_output=True, text=True,
                env={"DOCKER_HOST": self.engine.host, "HOME": self.engine._dir,
                     "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            self.assertEqual(result.returncode, 0, result.stderr)
            theirs = self.networking()
            rc, out, err = self.cli(*argv)
            self.assertEqual(rc, 0, err)
            self.assertEqual(self.networking(), theirs, flags)

    def test_same_errors(self):
        for flags in (["--network", "foo", "--network", "host"], ["--network-alias", "a"],
                      ["--network", "name=foo,bogus=1"]):
            argv = ["create", *flags, "busybox"]
            result = subprocess.run(
                [DOCKER_CLI, *argv], capture_output=True, text=True,
                env={"DOCKER_HOST": self.engine.host, "HOME": self.engine._dir,
                     "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            self.assertEqual(self.cli(*argv), (result.returncode, result.stdout,
                                               result.stderr), flags)
