"""Tests for the ``twistd ctrader`` plugin (ctrader_twisted.cli.tap and
twisted/plugins/ctrader_twisted_plugin.py; run from the project root so the
plugin directory is on sys.path)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from twisted.application.service import IService, IServiceMaker
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ReactorNotRunning
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from ctrader_twisted.cli import tap
from ctrader_twisted.cli.status import StreamError
from ctrader_twisted.cli.stream import StreamService


def plugin() -> Any:
    found = [p for p in getPlugins(IServiceMaker) if p.tapname == "ctrader"]
    if not found:
        raise AssertionError("the ctrader plugin was not found (run the tests from the project root)")
    return found[0]


class PluginTests(SynchronousTestCase):
    """Discovery and the IServiceMaker contract."""

    def test_found(self) -> None:
        """twistd finds the ``ctrader`` plugin and its options are :class:`tap.Options`."""
        maker = plugin()
        self.assertTrue(verifyObject(IServiceMaker, maker))
        self.assertIs(maker.options, tap.Options)
        self.assertIn("JSON lines", maker.description)

    def test_noPackageInitUnderTwisted(self) -> None:
        """``twisted/`` and ``twisted/plugins/`` have no ``__init__.py`` (it would shadow Twisted's own)."""
        root = Path(__file__).resolve().parent.parent / "twisted"
        self.assertFalse((root / "__init__.py").exists())
        self.assertFalse((root / "plugins" / "__init__.py").exists())


class OptionsTests(SynchronousTestCase):
    """Parsing and one-line usage errors."""

    def setUp(self) -> None:
        home = Path(self.mktemp())
        home.mkdir()
        self.environ = {"HOME": str(home)}

    def parse(self, *argv: str, environ: dict[str, str] | None = None) -> tap.Options:
        options = tap.Options()
        options.environ = self.environ if environ is None else environ
        options.parseOptions(list(argv))
        return options

    def test_defaults(self) -> None:
        """Only ``--symbols``: the simulator, no count, 30 s to connect."""
        options = self.parse("--symbols", "EURUSD, XAUUSD")
        self.assertEqual(options["symbolList"], ["EURUSD", "XAUUSD"])
        self.assertEqual(options["periodList"], [])
        self.assertTrue(options.settings.simulated)
        self.assertIsNone(options["count"])
        self.assertEqual(options["timeout"], 30.0)

    def test_everything(self) -> None:
        """Every option reaches the settings and the service's parameters."""
        output = self.mktemp()
        options = self.parse(
            "--symbols", "EURUSD", "--host", "demo", "--port", "5035", "--websocket", "--account", "1,2",
            "--trendbars", "M1,h1", "--depth", "--output", output, "--count", "5", "--duration", "2.5",
            "--client-id", "id", "--client-secret", "secret", "--access-token", "token",
        )
        self.addCleanup(options["outputFile"].close)
        settings = options.settings
        self.assertEqual((settings.host, settings.port, settings.websocket), ("demo.ctraderapi.com", 5035, True))
        self.assertEqual(settings.accountIds, (1, 2))
        self.assertEqual(options["periodList"], ["M1", "h1"])
        self.assertEqual((options["count"], options["duration"]), (5, 2.5))
        self.assertTrue(options["depth"])

    def test_tokenFile(self) -> None:
        """``--token-file``: the stream service reads its tokens there (and writes refreshed ones back)."""
        from ctrader_twisted.tokens import FileTokenStore, Tokens

        path = Path(self.mktemp())
        FileTokenStore(path, key="i").save(Tokens.fromAnswer({"accessToken": "a", "refreshToken": "r", "expiresIn": 9}, 0))
        options = self.parse("--symbols", "EURUSD", "--host", "demo", "--client-id", "i", "--client-secret", "s",
                             "--token-file", str(path))
        self.assertEqual(options.settings.tokenFile, str(path))
        self.assertEqual(options.settings.credentials.accessToken, "a")  # type: ignore[union-attr]
        service = tap.makeService(options, reactor=object())
        self.assertEqual(service.connection.tokenStore.path, path)  # type: ignore[attr-defined,union-attr]

    def test_environmentCredentials(self) -> None:
        """Host, credentials and accounts from the environment, as in the console command."""
        environ = dict(self.environ, CTRADER_HOST="live", CTRADER_CLIENT_ID="i", CTRADER_CLIENT_SECRET="s",
                       CTRADER_ACCESS_TOKEN="t", CTRADER_ACCOUNT_ID="42")
        options = self.parse("--symbols", "EURUSD", environ=environ)
        self.assertEqual(options.settings.host, "live.ctraderapi.com")
        self.assertEqual(options.settings.accountIds, (42,))

    def assertUsageError(self, fragment: str, *argv: str) -> None:
        with self.assertRaises(usage.UsageError) as raised:
            self.parse(*argv)
        self.assertIn(fragment, str(raised.exception))
        self.assertNotIn("\n", str(raised.exception))

    def test_usageErrors(self) -> None:
        """Bad values: a one-line ``UsageError`` naming the option."""
        self.assertUsageError("give the symbols")
        self.assertUsageError("give the symbols", "--symbols", " , ")
        self.assertUsageError("unknown trend bar period", "--symbols", "EURUSD", "--trendbars", "M7")
        self.assertUsageError("--count must be a positive number", "--symbols", "EURUSD", "--count", "x")
        self.assertUsageError("--duration must be a positive number", "--symbols", "EURUSD", "--duration", "-1")
        self.assertUsageError("--duration must be a positive number", "--symbols", "EURUSD", "--duration", "nan")
        self.assertUsageError("--timeout must be a positive number", "--symbols", "EURUSD", "--timeout", "inf")
        self.assertUsageError("--port must be an integer", "--symbols", "EURUSD", "--port", "x")
        self.assertUsageError("no client id", "--symbols", "EURUSD", "--host", "demo")
        self.assertUsageError("cannot open", "--symbols", "EURUSD", "--output", "/nonexistent/dir/out.jsonl")

    def test_malformedConfig(self) -> None:
        """A malformed config file is a one-line ``UsageError``."""
        path = self.mktemp()
        Path(path).write_text("[ctrader\n")
        self.assertUsageError("malformed config file", "--symbols", "EURUSD", "--config", path)

    def test_secretNotInUsageError(self) -> None:
        """The error for incomplete credentials never shows the secret given."""
        with self.assertRaises(usage.UsageError) as raised:
            self.parse("--symbols", "EURUSD", "--host", "demo", "--client-secret", "hunter2", "--access-token", "tok")
        self.assertNotIn("hunter2", str(raised.exception))


class TwistdCommandLineTests(SynchronousTestCase):
    """The plugin under twistd's own option parser."""

    def setUp(self) -> None:
        home = Path(self.mktemp())
        home.mkdir()
        self.patch(tap.Options, "environ", {"HOME": str(home)})
        self.patch(tap, "_verbosity", [0])

    def test_logGoesToStderrUnderNodaemon(self) -> None:
        """Under ``twistd -n`` without ``--logfile`` the log goes to stderr: stdout is JSON lines only."""
        config = ServerOptions()
        config.parseOptions(["-n", "ctrader", "--symbols", "EURUSD"])
        self.assertIs(config["logger"], tap.stderrLogObserver)
        self.assertEqual(config.subOptions["symbolList"], ["EURUSD"])

    def test_explicitLogfileIsKept(self) -> None:
        """An explicit ``--logfile`` is left alone."""
        config = ServerOptions()
        config.parseOptions(["-n", "--logfile", "x.log", "ctrader", "--symbols", "EURUSD"])
        self.assertIsNone(config["logger"])

    def parseUnderTwistd(self, *argv: str) -> tuple[int, str]:
        """Parse *argv* with twistd's parser; the exit status and stderr of a usage error."""
        stderr = io.StringIO()
        self.patch(tap.Options, "stderr", stderr)
        with self.assertRaises(SystemExit) as raised:
            ServerOptions().parseOptions(list(argv))
        return int(raised.exception.code or 0), stderr.getvalue()

    def test_daemonNeedsOutput(self) -> None:
        """A daemon has no stdout: ``--output`` is required (one line, exit status 2)."""
        code, err = self.parseUnderTwistd("ctrader", "--symbols", "EURUSD")
        self.assertEqual(code, 2)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("ctrader-twisted: error: a daemon has no stdout: run with twistd -n, or give --output FILE", err)

    def test_usageErrorIsOneLine(self) -> None:
        """A bad value or an unknown option under twistd: one line naming it and the --help hint,
        exit status 2, none of twistd's usage text."""
        for argv, fragment in (
            (["-n", "ctrader", "--symbols", "EURUSD", "--count", "x"], "error: --count must be a positive number"),
            (["-n", "ctrader", "--symbols", "EURUSD", "--bogus"], "error: option --bogus not recognized"),
            (["-n", "ctrader", "--symbols"], "error: option --symbols requires argument"),
        ):
            code, err = self.parseUnderTwistd(*argv)
            self.assertEqual(code, 2, argv)
            self.assertEqual(err.splitlines(), [f"ctrader-twisted: {fragment} (`twistd ctrader --help` lists the options)"])

    def test_versionIsOurs(self) -> None:
        """``twistd ctrader --version`` prints ctrader-twisted's version, not Twisted's."""
        from ctrader_twisted import __version__

        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit) as raised:
            ServerOptions().parseOptions(["ctrader", "--version"])
        self.assertEqual(raised.exception.code, 0)
        self.assertEqual(out.getvalue(), f"twistd ctrader (ctrader-twisted) {__version__}\n")

    def test_verbosityChoosesTheLogLevel(self) -> None:
        """Without -v the stderr log shows critical events only (the status lines say the rest); -v info; -vv debug."""
        from twisted.logger import LogLevel

        for flags, shown, hidden in (
            ([], LogLevel.critical, LogLevel.error),
            (["-v"], LogLevel.info, LogLevel.debug),
            (["-vv"], LogLevel.debug, None),
        ):
            config = ServerOptions()
            config.parseOptions(["-n", "ctrader", "--symbols", "EURUSD", *flags])
            written = io.StringIO()
            self.patch(sys, "__stderr__", written)
            observer = tap.stderrLogObserver()
            observer({"log_level": shown, "log_format": "shown", "log_namespace": "x", "log_time": 0.0})
            if hidden is not None:
                observer({"log_level": hidden, "log_format": "hidden", "log_namespace": "x", "log_time": 0.0})
            self.assertIn("shown", written.getvalue(), flags)
            self.assertNotIn("hidden", written.getvalue(), flags)


class FakeReactor:
    def __init__(self, running: bool = True) -> None:
        self.stops = 0
        self.running = running

    def stop(self) -> None:
        self.stops += 1
        if not self.running:
            raise ReactorNotRunning()
        self.running = False


class FakeService:
    def __init__(self) -> None:
        from twisted.internet.defer import Deferred

        self.done: Any = Deferred()

    def whenDone(self) -> Any:
        return self.done


class StopWhenDoneTests(SynchronousTestCase):
    """Under twistd: stop the reactor when the stream ends; exit 1 on errors."""

    def test_success(self) -> None:
        """A stream that ends normally stops the reactor, exit status untouched."""
        fake, service, status, codes = FakeReactor(), FakeService(), io.StringIO(), []
        tap.stopWhenDone(service, fake, status, codes.append)  # type: ignore[arg-type]
        service.done.callback(None)
        self.assertEqual((fake.stops, codes, status.getvalue()), (1, [], ""))

    def test_failure(self) -> None:
        """A fatal error is one status line, then exit status 1 and the reactor stopped."""
        fake, service, status, codes = FakeReactor(), FakeService(), io.StringIO(), []
        tap.stopWhenDone(service, fake, status, codes.append)  # type: ignore[arg-type]
        service.done.errback(StreamError("unknown symbol 'X'"))
        self.assertEqual(codes, [1])
        self.assertEqual(status.getvalue(), "ctrader-twisted: error: unknown symbol 'X'\n")
        self.assertEqual(fake.stops, 1)

    def test_alreadyStopping(self) -> None:
        """A reactor already stopping (Ctrl-C) is not an error."""
        fake, service, codes = FakeReactor(running=False), FakeService(), []
        tap.stopWhenDone(service, fake, io.StringIO(), codes.append)  # type: ignore[arg-type]
        service.done.callback(None)  # no ReactorNotRunning escapes
        self.assertEqual(fake.stops, 1)


class MakeServiceTests(TestCase):
    """makeService streams from the in-process simulator."""

    @inlineCallbacks
    def test_streamsFromTheSimulator(self) -> Any:
        """The service made for twistd streams from the in-process simulator."""
        home = Path(self.mktemp())
        home.mkdir()
        options = tap.Options()
        options.environ = {"HOME": str(home)}
        options.parseOptions(["--symbols", "EURUSD,XAUUSD", "--count", "4", "--trendbars", "M1"])
        stdout, stderr = io.StringIO(), io.StringIO()
        service = tap.makeService(options, reactor=reactor, stdout=stdout, stderr=stderr)
        self.assertTrue(verifyObject(IService, service))
        self.assertIsInstance(service, StreamService)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.whenDone()
        yield service.stopService()
        records = [json.loads(line) for line in stdout.getvalue().splitlines()]
        self.assertEqual(len(records), 4)
        self.assertTrue(all(r["simulated"] for r in records))
        self.assertLessEqual({r["event"] for r in records}, {"spot", "trendbar"})
        self.assertIn("SIMULATED DATA", stderr.getvalue())
