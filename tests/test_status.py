"""Tests for ctrader_twisted.cli.status: the one status-line writer and the
one-line error descriptions (the loopback tests of the stream service and
the commands cover refused credentials and TLS failures end to end)."""

from __future__ import annotations

import io

from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TimeoutError as ConnectTimeoutError
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.cli.status import PREFIX, StreamError, describeError, isExpected, say


class SayTests(SynchronousTestCase):
    def test_oneLineWithThePrefix(self) -> None:
        stream = io.StringIO()
        say(stream, "connecting to localhost:5035 over TLS TCP")
        self.assertEqual(stream.getvalue(), "ctrader-twisted: connecting to localhost:5035 over TLS TCP\n")
        self.assertEqual(PREFIX, "ctrader-twisted: ")

    def test_closedStreamIsIgnored(self) -> None:
        """A status line is never worth failing for: a closed stream is skipped."""
        stream = io.StringIO()
        stream.close()
        say(stream, "stopped (0 lines written)")
        self.assertTrue(stream.closed)


class DescribeErrorTests(SynchronousTestCase):
    def test_streamErrorAsItIs(self) -> None:
        self.assertEqual(describeError(StreamError("unknown symbol 'X'"), "h", 1), "unknown symbol 'X'")

    def test_connectionErrorsNameTheServer(self) -> None:
        self.assertEqual(describeError(DNSLookupError("nope"), "nohost", 5035), "cannot resolve host name 'nohost'")
        self.assertEqual(describeError(ConnectTimeoutError(), "h", 5035), "timed out connecting to h:5035")
        self.assertTrue(
            describeError(ConnectionRefusedError(), "h", 5035).startswith("cannot connect to h:5035: connection refused")
        )

    def test_anythingElseIsOneLine(self) -> None:
        """An unforeseen error is named with the first line of its message, no traceback."""
        self.assertEqual(describeError(RuntimeError("first\nsecond"), "h", 1), "h:1: RuntimeError: first")
        self.assertEqual(describeError(RuntimeError(), "h", 1), "h:1: RuntimeError")

    def test_isExpected(self) -> None:
        self.assertTrue(isExpected(StreamError("x")))
        self.assertTrue(isExpected(ConnectionRefusedError()))
        self.assertFalse(isExpected(RuntimeError("a bug")))
