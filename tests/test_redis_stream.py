"""``stream --redis``, ``consume`` and ``twistd ctrader --redis [--group]``: options and a real run."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted.cli import run as runCommand
from ctrader_twisted.cli import tap
from ctrader_twisted.cli.scaleout import dropPartialLine, seenKeys, withKey
from ctrader_twisted.cli.stream import StreamService
from ctrader_twisted.redis import RedisLink, eventKey
from ctrader_twisted.redis.workers import SharedAccountsService

from .redisutil import readStream, run, startServer


class StreamToRedisTests(TestCase):
    timeout = 60

    def test_streamPublishesEveryLine(self) -> Any:
        """`stream --redis --output FILE`: every JSON line also lands in the account's stream, with its key."""

        async def go() -> None:
            server = startServer(self)
            output = os.path.abspath(self.mktemp())
            stdout, stderr = io.StringIO(), io.StringIO()
            code = await runCommand(reactor, ["stream", "EURUSD,GBPUSD", "--redis", server.url, "--count", "40",
                                              "--sim-interval", "0.02", "--output", output], stdout, stderr)
            self.assertEqual(code, 0, stderr.getvalue())
            self.assertIn(f"publishing to Redis {server.url}", stderr.getvalue())
            self.assertEqual(stdout.getvalue(), "")
            with open(output) as f:
                lines = f.read().splitlines()
            self.assertEqual(len(lines), 40)
            link = RedisLink(server.url, reactor)
            link.start()
            self.addCleanup(link.stop)
            await link.whenConnected()
            events = await readStream(link, "ctrader:{2000001}:spot")
            self.assertEqual([line for _, _, line in events], lines)
            # Two spots of a symbol in one millisecond get "#2": keys stay unique.
            keys = [key for _, key, _ in events]
            self.assertEqual([key.split("#")[0] for key in keys], [eventKey(json.loads(line)) for line in lines])
            self.assertEqual(len(set(keys)), len(keys))

        return run(go())

    def test_consumeReadsWhatStreamPublished(self) -> Any:
        """`consume` writes each event once with its key; a second run on the same file adds nothing twice."""

        async def go() -> None:
            server = startServer(self)
            code = await runCommand(reactor, ["stream", "EURUSD", "--redis", server.url, "--count", "25",
                                              "--sim-interval", "0.02"], io.StringIO(), io.StringIO())
            self.assertEqual(code, 0)
            output = os.path.abspath(self.mktemp())
            stderr = io.StringIO()
            argv = ["consume", "--redis", server.url, "--group", "g", "--account", "2000001", "--kinds", "spot",
                    "--consumer", "c", "--output", output, "--count", "25"]
            self.assertEqual(await runCommand(reactor, argv, io.StringIO(), stderr), 0, stderr.getvalue())
            keys = seenKeys(output)
            self.assertEqual(len(keys), 25)
            self.assertEqual(len(set(keys)), 25)

        return run(go())


class RedisOptionTests(SynchronousTestCase):
    def setUp(self) -> None:
        home = Path(self.mktemp())
        home.mkdir()
        self.environ = {"HOME": str(home)}

    def command(self, *argv: str) -> tuple[int, str]:
        stderr = io.StringIO()
        code = self.successResultOf(runCommand(reactor, list(argv), io.StringIO(), stderr, self.environ))
        return code, stderr.getvalue()

    def test_badRedisOptions(self) -> None:
        """Bad URL, maxlen, kinds or accounts: exit status 2 and one line, without the password."""
        for argv, text in [
            (["stream", "EURUSD", "--redis", "http://:pw@h"], "redis:// or rediss://"),
            (["stream", "EURUSD", "--redis", "redis://:pw@h:99999"], "port"),
            (["stream", "EURUSD", "--redis", "redis://h", "--redis-maxlen", "spot=-1"], "--redis-maxlen"),
            (["stream", "EURUSD", "--redis-maxlen", "spot=1"], "needs --redis"),
            (["stream", "EURUSD", "--redis", "redis://h", "--redis-prefix", "a b"], "--redis-prefix"),
            (["consume", "--redis", "redis://h", "--group", "g", "--account", "1", "--kinds", "trades"], "--kinds"),
            (["consume", "--redis", "redis://h", "--group", "g", "--account", "x"], "--account"),
            (["consume", "--redis", "redis://h", "--group", "g", "--account", "1", "--claim-idle", "-1"], "--claim-idle"),
        ]:
            code, err = self.command(*argv)
            self.assertEqual(code, 2, argv)
            self.assertIn(text, err)
            self.assertNotIn(":pw@", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.environ = self.environ
        options.parseOptions(list(argv))
        return options

    def test_twistdOptions(self) -> None:
        """--redis makes a stream service with a sink and no stdout; --group makes a worker."""
        options = self.parse("--symbols", "EURUSD", "--redis", "redis://127.0.0.1:1/0")
        service = tap.makeService(options, reactor, io.StringIO(), io.StringIO())
        self.assertIsInstance(service, StreamService)
        assert isinstance(service, StreamService)
        self.assertIsNone(service.output)
        self.assertEqual(len(service.sinks), 1)
        options = self.parse("--symbols", "EURUSD", "--redis", "redis://127.0.0.1:1/0", "--group", "g", "--lease", "3")
        worker = tap.makeService(options, reactor, io.StringIO(), io.StringIO())
        self.assertIsInstance(worker, SharedAccountsService)
        assert isinstance(worker, SharedAccountsService)
        self.assertEqual((worker.group, worker.lease), ("g", 3.0))
        for argv, text in [
            (["--symbols", "EURUSD", "--group", "g"], "--group needs --redis"),
            (["--symbols", "EURUSD", "--redis", "redis://h", "--group", "g", "--lease", "nan"], "--lease"),
            (["--symbols", "EURUSD", "--redis", "redis://h", "--group", "g", "--lease", "-2"], "--lease"),
            (["--symbols", "EURUSD", "--redis", "redis://h", "--group", "g", "--count", "5"], "--group"),
            (["--symbols", "EURUSD", "--redis", "ftp://h"], "redis://"),
            (["--symbols", "EURUSD", "--duration", "inf"], "--duration"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(*argv)
            self.assertIn(text, str(caught.exception))


class OutputFileTests(SynchronousTestCase):
    def test_withKey(self) -> None:
        self.assertEqual(withKey('{"a":1}', "k"), '{"a":1,"key":"k"}')
        self.assertEqual(withKey("{}", "k"), '{"key":"k"}')

    def test_partialLastLineDropped(self) -> None:
        """A line cut by a crash is removed before appending; the keys of whole lines are kept."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('{"key":"a"}\n{"key":"b"}\n{"key":"c')
        dropPartialLine(path)
        with open(path) as f:
            self.assertEqual(f.read(), '{"key":"a"}\n{"key":"b"}\n')
        self.assertEqual(seenKeys(path), ["a", "b"])
        self.assertEqual(seenKeys(path, limit=1), ["b"])
        self.assertEqual(seenKeys(self.mktemp()), [])
