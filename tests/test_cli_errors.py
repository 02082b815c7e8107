"""The console command's one-line messages (issue 17): a transport that does
not match the port, CA files without a certificate, the simulator's port in
use, where a bad value came from, and documentation addresses from the
package metadata. In-process with :func:`ctrader_twisted.cli.run`, against
real simulators over loopback."""

from __future__ import annotations

import ast
import io
import socket
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted import cli
from ctrader_twisted.cli import status
from ctrader_twisted.cli.config import ConfigError, loadSettings
from ctrader_twisted.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent


class CliTestCase(TestCase):
    def setUp(self) -> None:
        self.home = Path(self.mktemp())
        self.home.mkdir()
        self.environ = {"HOME": str(self.home)}

    async def call(self, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = await cli.run(reactor, list(argv), stdout, stderr, self.environ if environ is None else environ)
        return code, stdout.getvalue(), stderr.getvalue()

    def assertOneLine(self, stderr: str, *fragments: str) -> str:
        """*stderr* has exactly one error line, holding every fragment; no traceback."""
        errors = [line for line in stderr.splitlines() if line.startswith("ctrader-twisted: error:")]
        self.assertEqual(len(errors), 1, stderr)
        for fragment in fragments:
            self.assertIn(fragment, errors[0])
        self.assertNotIn("Traceback", stderr)
        return errors[0]

    def simulator(self) -> tuple[Simulator, Any, dict[str, str], str]:
        """A simulator of the test's own on loopback (TLS and WebSocket), the environment to reach it, its CA."""
        sim = Simulator(seed=3, clock=reactor, spotInterval=0.05)
        listening = sim.listen(reactor, tlsPort=0, wsPort=0)
        self.addCleanup(sim.stop)
        ca = str(self.home / "ca.pem")
        Path(ca).write_bytes(listening.caPEM)
        environ = dict(self.environ, CTRADER_HOST="localhost", CTRADER_CLIENT_ID=sim.clientId,
                       CTRADER_CLIENT_SECRET=sim.clientSecret, CTRADER_ACCESS_TOKEN=sim.accessToken)
        return sim, listening, environ, ca


class TransportMismatchTests(CliTestCase):
    """The transport does not match the port: said at once, not after 30 s as a timeout."""

    timeout = 30

    async def test_tlsAgainstTheWebSocketPort(self) -> None:
        """TLS TCP against a WebSocket port: the server waits for an HTTP upgrade and never answers;
        the first request's timeout (5 s) tells, not the 30 s connect timeout."""
        _, listening, environ, ca = self.simulator()
        started = reactor.seconds()
        code, out, err = await self.call("accounts", "--port", str(listening.wsPort), "--ca-file", ca, environ=environ)
        elapsed = reactor.seconds() - started
        self.assertEqual((code, out), (cli.EXIT_FAILURE, ""))
        self.assertOneLine(err, f"localhost:{listening.wsPort}", "the transport probably does not match the port",
                           "add --websocket", "5035", "5036")
        self.assertNotIn("timed out", err)
        self.assertLess(elapsed, 15)

    async def test_webSocketAgainstTheTlsPort(self) -> None:
        """WebSocket against a TLS TCP port: the opening handshake fails; said at once."""
        _, listening, environ, ca = self.simulator()
        started = reactor.seconds()
        code, out, err = await self.call("symbols", "--websocket", "--port", str(listening.tlsPort), "--ca-file", ca,
                                         environ=environ)
        self.assertEqual((code, out), (cli.EXIT_FAILURE, ""))
        self.assertOneLine(err, f"the WebSocket handshake with localhost:{listening.tlsPort} failed",
                           "the transport probably does not match the port", "drop --websocket")
        self.assertLess(reactor.seconds() - started, 5)

    async def test_webSocketFromTheConfigFile(self) -> None:
        """``websocket = true`` in the config file: the hint names that key, not an option never given."""
        _, listening, environ, ca = self.simulator()
        config = self.home / "config.toml"
        config.write_text("websocket = true\n")
        code, _, err = await self.call("accounts", "--config", str(config), "--port", str(listening.tlsPort),
                                       "--ca-file", ca, environ=environ)
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLine(err, f"then drop websocket in config file {config}")

    async def test_matchingTransportsWork(self) -> None:
        """The right transport on each port: no false alarm."""
        _, listening, environ, ca = self.simulator()
        code, _, err = await self.call("accounts", "--port", str(listening.tlsPort), "--ca-file", ca, environ=environ)
        self.assertEqual(code, 0, err)
        code, _, err = await self.call("accounts", "--websocket", "--port", str(listening.wsPort), "--ca-file", ca,
                                       environ=environ)
        self.assertEqual(code, 0, err)

    def test_httpAnswerOverTls(self) -> None:
        """A server that answers TLS TCP in HTTP (a web or WebSocket server's 400): named as such."""
        from ctrader_twisted.cli.connect import _mismatch
        from ctrader_twisted.errors import FrameTooLargeError

        failure = _mismatch(FrameTooLargeError(int.from_bytes(b"HTTP", "big"), 15_000_000), "h:5036", False,
                            "--websocket", 1)
        assert failure is not None
        self.assertIn("h:5036 answered in HTTP over TLS TCP: the transport probably does not match the port",
                      str(failure.value))
        self.assertIsNone(_mismatch(FrameTooLargeError(20_000_000, 15_000_000), "h:1", False, "--websocket", 1))


class CaFileTests(CliTestCase):
    """``--ca-file`` without a certificate in it: one line naming the file, exit status 2."""

    async def check(self, content: bytes | None, *fragments: str) -> None:
        path = self.home / "ca.pem"
        if content is not None:
            path.write_bytes(content)
        code, out, err = await self.call("accounts", "--host", "localhost", "--client-id", "i", "--client-secret", "s",
                                         "--access-token", "t", "--ca-file", str(path))
        self.assertEqual((code, out), (cli.EXIT_USAGE, ""))
        self.assertOneLine(err, f"the CA file {path} (from --ca-file)", *fragments)

    async def test_empty(self) -> None:
        await self.check(b"", "holds no PEM certificate")

    async def test_notPem(self) -> None:
        await self.check(b"hello\n", "holds no PEM certificate")

    async def test_malformedPem(self) -> None:
        await self.check(b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
                         "malformed PEM certificate")

    async def test_missing(self) -> None:
        await self.check(None, "does not exist")

    async def test_directory(self) -> None:
        code, _, err = await self.call("accounts", "--host", "h", "--client-id", "i", "--client-secret", "s",
                                       "--access-token", "t", "--ca-file", str(self.home))
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertOneLine(err, "is a directory")

    async def test_fromTheConfigFile(self) -> None:
        """Given in the config file: the message says so."""
        path = self.home / "empty.pem"
        path.write_bytes(b"")
        config = self.home / "config.toml"
        config.write_text(f'ca_file = "{path}"\n')
        code, _, err = await self.call("accounts", "--config", str(config))
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertOneLine(err, f"(from ca_file in config file {config}) holds no PEM certificate")

    async def test_goodCaFileWorks(self) -> None:
        _, listening, environ, ca = self.simulator()
        code, _, err = await self.call("accounts", "--port", str(listening.tlsPort), "--ca-file", ca, environ=environ)
        self.assertEqual(code, 0, err)


class SimulatorPortInUseTests(CliTestCase):
    """``ctrader-twisted simulator`` on a port already taken: one line naming the port and the option."""

    def taken(self) -> int:
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return int(s.getsockname()[1])

    async def test_tlsPortInUse(self) -> None:
        port = self.taken()
        code, out, err = await self.call("simulator", "--tls-port", str(port), "--ws-port", "none",
                                         "--cert-dir", str(self.home / "certs"))
        self.assertEqual((code, out), (cli.EXIT_FAILURE, ""))
        self.assertOneLine(err, f"port {port} (--tls-port) on 127.0.0.1 is already in use", "0 picks a free one")

    async def test_webSocketPortInUse(self) -> None:
        """The WebSocket port taken: the message names --ws-port."""
        port = self.taken()
        code, _, err = await self.call("simulator", "--tls-port", "0", "--ws-port", str(port),
                                       "--cert-dir", str(self.home / "certs"))
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLine(err, f"port {port} (--ws-port)")

    async def test_unreadableCertificate(self) -> None:
        missing = self.home / "missing.pem"
        code, _, err = await self.call("simulator", "--tls-port", "0", "--ws-port", "none", "--certificate",
                                       str(missing), "--private-key", str(missing))
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLine(err, f"cannot use {missing}: No such file or directory")

    async def test_badValueIsUsage(self) -> None:
        code, _, err = await self.call("simulator", "--spot-interval", "nan")
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertOneLine(err, "--spot-interval must be a positive number of seconds, not nan")


class SourcesTests(CliTestCase):
    """A bad or refused value is traced to where it came from, in words a person would write."""

    async def test_refusedAccountFromTheOption(self) -> None:
        """``--account 123``: the message names --account, not CTRADER_ACCOUNT_ID."""
        code, _, err = await self.call("symbols", "--account", "123")
        self.assertEqual(code, cli.EXIT_FAILURE)
        line = self.assertOneLine(err, "the access token does not grant account 123, given by --account",
                                  "fix --account", "`ctrader-twisted accounts` lists")
        self.assertNotIn("CTRADER_ACCOUNT_ID", line)

    async def test_refusedAccountFromTheEnvironment(self) -> None:
        code, _, err = await self.call("symbols", environ=dict(self.environ, CTRADER_ACCOUNT_ID="123"))
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLine(err, "does not grant account 123, given by CTRADER_ACCOUNT_ID")

    async def test_refusedAccountFromTheConfigFile(self) -> None:
        config = self.home / "config.toml"
        config.write_text("accounts = [123]\n")
        code, _, err = await self.call("symbol", "EURUSD", "--config", str(config))
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLine(err, f"given by accounts in config file {config}")

    async def test_badValuesNameTheirSource(self) -> None:
        config = self.home / "config.toml"
        config.write_text("port = 0\n")
        for argv, environ, expected in (
            (["accounts", "--host", "h", "--port", "0"], {}, "--port must be an integer from 1 to 65535"),
            (["accounts", "--host", "h"], {"CTRADER_PORT": "abc"},
             "CTRADER_PORT must be an integer from 1 to 65535, not 'abc'"),
            (["accounts", "--host", "h", "--config", str(config)], {},
             f"port in config file {config} must be an integer from 1 to 65535, not 0"),
            (["accounts"], {"CTRADER_ACCOUNT_ID": "x"}, "CTRADER_ACCOUNT_ID must list account ids"),
            (["stream", "EURUSD", "--account", "1,-2"], {}, "--account must list account ids (positive integers, "
             "comma-separated), not '-2'"),
        ):
            code, _, err = await self.call(*argv, environ=dict(self.environ, **environ))
            self.assertEqual(code, cli.EXIT_USAGE, argv)
            line = self.assertOneLine(err, expected)
            self.assertNotIn("(option)", line)

    def test_settingsKnowTheirSources(self) -> None:
        config = self.home / "config.toml"
        config.write_text('client_secret = "s"\naccounts = [5]\n')
        config.chmod(0o600)
        settings = loadSettings({"host": "h", "clientId": "i"}, dict(self.environ, CTRADER_ACCESS_TOKEN="t"), config)
        self.assertEqual(dict(settings.sources), {
            "host": "--host", "clientId": "--client-id", "clientSecret": f"client_secret in config file {config}",
            "accessToken": "CTRADER_ACCESS_TOKEN", "accounts": f"accounts in config file {config}",
        })
        self.assertNotIn("'s'", repr(settings.sources))

    async def test_refusedSecretNamesBothSources(self) -> None:
        """Refused application credentials: where the id and the secret came from, never the secret."""
        sim, listening, environ, ca = self.simulator()
        code, _, err = await self.call("accounts", "--port", str(listening.tlsPort), "--ca-file", ca,
                                       "--client-secret", "wrong-s3cret", environ=environ)
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLine(err, "check the client id from CTRADER_CLIENT_ID and the secret from --client-secret")
        self.assertNotIn("wrong-s3cret", err)


class DocumentationAddressTests(SynchronousTestCase):
    """Messages send installed users to the documentation's address, from the package metadata."""

    def test_fromTheMetadata(self) -> None:
        """The installed package's Project-URLs: ``docsUrl`` and the metadata's "Command line" agree."""
        from importlib.metadata import metadata

        urls = dict(
            (label.strip(), url.strip())
            for label, _, url in (str(e).partition(",") for e in metadata("ctrader-twisted").get_all("Project-URL") or [])
        )
        self.assertEqual(status.docsUrl("cli"), urls["Command line"])
        self.assertEqual(status.docsUrl(), urls["Documentation"])
        self.assertTrue(status.docsUrl("cli", "output-format").endswith("cli.html#output-format"))

    def test_followsTheMetadata(self) -> None:
        """Another Documentation URL in the metadata: the messages use it."""
        import importlib.metadata

        class Meta:
            def get_all(self, name: str) -> list[str]:
                return ["Homepage, https://example.org/", "Documentation, https://docs.example.org/ct"]

        self.patch(importlib.metadata, "metadata", lambda name: Meta())
        with self.assertRaises(ConfigError) as raised:
            loadSettings({"host": "h"}, {"HOME": self.mktemp()})
        self.assertIn("(see https://docs.example.org/ct/cli.html#credentials-and-configuration)", str(raised.exception))

    def test_fallbackWithoutMetadata(self) -> None:
        import importlib.metadata

        def absent(name: str) -> Any:
            raise importlib.metadata.PackageNotFoundError(name)

        self.patch(importlib.metadata, "metadata", absent)
        self.assertEqual(status.docsUrl("credentials"), status.DOCS_URL + "credentials.html")

    def test_noSourcePathsInMessages(self) -> None:
        """No string the command line shows points into the source tree (``docs/...rst``), which an
        installed user lacks; docstrings may."""
        offenders = []
        for path in sorted((ROOT / "ctrader_twisted" / "cli").glob("*.py")) + [
            ROOT / "ctrader_twisted" / "simulator" / "tap.py", ROOT / "ctrader_twisted" / "simulator" / "__main__.py"
        ]:
            tree = ast.parse(path.read_text())
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                        and "docs/" in node.value):
                    offenders.append(f"{path.name}:{node.lineno}: {node.value!r}")
        self.assertEqual(offenders, [])

    def test_helpShowsTheAddress(self) -> None:
        out = io.StringIO()
        self.patch(__import__("sys"), "stdout", out)
        code = self.successResultOf(cli.run(reactor, ["--help"], out, io.StringIO(), {}))
        self.assertEqual(code, 0)
        self.assertIn(f"Documentation: {status.docsUrl('cli')}", out.getvalue())

    def test_addressesPointAtPagesThatExist(self) -> None:
        """Every ``docsUrl(page, anchor)`` the command line uses names a page of ``docs/`` and a section
        (title or label) on it."""
        import re

        used: set[tuple[str, str]] = set()
        for path in (ROOT / "ctrader_twisted" / "cli").glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "docsUrl":
                    values = [a.value for a in node.args if isinstance(a, ast.Constant)]
                    used.add((values[0] if values else "", values[1] if len(values) > 1 else ""))
        self.assertIn(("cli", "output-format"), used)
        for page, anchor in sorted(used):
            if not page:
                continue
            text = (ROOT / "docs" / f"{page}.rst").read_text()
            if anchor:
                lines = text.splitlines()
                titles = {
                    re.sub(r"[^a-z0-9]+", "-", re.sub(r"``", "", lines[i]).lower()).strip("-")
                    for i in range(len(lines) - 1)
                    if lines[i].strip() and re.fullmatch(r"([=\-~^])\1{2,}", lines[i + 1].strip())
                }
                labels = set(re.findall(r"^\.\. _([\w-]+):$", text, re.M))
                self.assertIn(anchor, titles | labels, f"{page}.rst has no section {anchor!r}")


class ConnectClientTests(SynchronousTestCase):
    def test_leavesNoObserverBehind(self) -> None:
        """Once connected, connectClient's observers are gone from the client's core:
        a long-running program does not keep one per connect."""
        from ctrader_twisted.cli.connect import connectClient
        from ctrader_twisted.testing import SimulatedServer

        server = SimulatedServer()
        client = server.managedClient()
        factory = client.factory
        before = (list(factory._connectionObservers), list(factory._disconnectionObservers),
                  list(factory._attemptFailureObservers))
        self.assertIs(server.resultOf(connectClient(client, server.clock, 30)), client)
        self.assertEqual((factory._connectionObservers, factory._disconnectionObservers,
                          factory._attemptFailureObservers), before)
        server.resultOf(client.stopService())
