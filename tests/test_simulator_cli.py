"""The simulator's twistd plugin, its options and the ``python -m`` command."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr

from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from ctrader_twisted import Client
from ctrader_twisted.simulator import __main__ as command
from ctrader_twisted.simulator.tap import Options, SimulatorService, describe, makeService


class OptionsTests(TestCase):
    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self) -> None:
        options = self.parse()
        self.assertEqual((options["tls-port"], options["ws-port"], options["plain-port"]), (5035, 5036, None))
        self.assertEqual(options["interface"], "127.0.0.1")

    def test_ports(self) -> None:
        options = self.parse("--tls-port", "0", "--ws-port", "none", "--plain-port", "7000")
        self.assertEqual((options["tls-port"], options["ws-port"], options["plain-port"]), (0, None, 7000))

    def test_errors(self) -> None:
        self.assertRaises(usage.UsageError, self.parse, "--tls-port", "x")
        self.assertRaises(usage.UsageError, self.parse, "--tls-port", "none", "--ws-port", "none")
        self.assertRaises(usage.UsageError, self.parse, "--certificate", "a.pem")
        self.assertRaises(usage.UsageError, self.parse, "--spot-interval", "0")

    def test_secretNotAnOption(self) -> None:
        """The client secret comes from the environment, never from argv."""
        self.assertRaises(usage.UsageError, self.parse, "--client-secret", "s")

    def test_commandUsageError(self) -> None:
        err = io.StringIO()
        with redirect_stderr(err):
            exc = self.assertRaises(SystemExit, command.main, ["--tls-port", "-1"])
        self.assertEqual(exc.code, 2)
        self.assertIn("--tls-port", err.getvalue())


class PluginTests(TestCase):
    def test_discovered(self) -> None:
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        maker = makers["ctrader-simulator"]
        verifyObject(IServiceMaker, maker)
        self.assertIs(maker.options, Options)

    async def test_serviceRuns(self) -> None:
        """The service listens, writes its credentials and serves a client."""
        directory = FilePath(self.mktemp())
        options = Options()
        options.parseOptions(["--tls-port", "0", "--ws-port", "0", "--cert-dir", directory.path])
        service = makeService(options)
        self.assertIsInstance(service, SimulatorService)
        service.startService()
        self.addCleanup(service.stopService)
        credentials = json.loads(directory.child("credentials.json").getContent())
        self.assertEqual(credentials["tlsPort"], service.listening.tlsPort)
        self.assertEqual(directory.child("credentials.json").getPermissions().shorthand(), "rw-------")
        text = describe(service.simulator, service.listening, directory.path)
        self.assertIn(f"localhost:{service.listening.tlsPort}", text)
        self.assertIn(service.simulator.accessToken, text)
        client = Client(
            "localhost", credentials["tlsPort"], reactor=reactor, trustRoot=directory.child("ca.pem").path
        )
        client.startService()
        self.addCleanup(client.stopService)
        await client.request(
            "ProtoOAApplicationAuthReq", clientId=credentials["clientId"], clientSecret=credentials["clientSecret"]
        )
        accounts = await client.request("ProtoOAGetAccountListByAccessTokenReq", accessToken=credentials["accessToken"])
        self.assertEqual(len(accounts.ctidTraderAccount), 2)


class OfficialSDKTests(TestCase):
    """Spotware's SDK against the simulator, through docs/examples/official_sdk_against_simulator.py.

    The official SDK pins old Twisted and protobuf, so it lives in a virtual
    environment of its own: set ``CTRADER_OFFICIAL_SDK_PYTHON`` to that
    environment's interpreter to run this test (skipped otherwise).
    """

    timeout = 60

    async def test_officialSdkConnectsAuthenticatesListsAndStreams(self) -> None:
        import os
        from pathlib import Path

        from twisted.internet.utils import getProcessOutputAndValue
        from twisted.trial.unittest import SkipTest

        python = os.environ.get("CTRADER_OFFICIAL_SDK_PYTHON")
        if not python:
            raise SkipTest("set CTRADER_OFFICIAL_SDK_PYTHON to an interpreter with ctrader-open-api installed")
        from ctrader_twisted.simulator import Simulator
        from ctrader_twisted.simulator.tap import writeCredentials

        sim = Simulator(spotInterval=0.1)
        listening = sim.listen(reactor, wsPort=None)
        self.addCleanup(sim.stop)
        directory = self.mktemp()
        credentials = writeCredentials(sim, listening, directory)
        script = Path(__file__).resolve().parent.parent / "docs" / "examples" / "official_sdk_against_simulator.py"
        out, err, code = await getProcessOutputAndValue(python, [str(script), str(credentials)], env={}, reactor=reactor)
        self.assertEqual(code, 0, err.decode(errors="replace"))
        text = out.decode()
        self.assertIn("symbols: EURUSD, GBPUSD, XAUUSD, US100.cash, GER40.cash", text)
        self.assertEqual(text.count("spot 1:"), 5)
