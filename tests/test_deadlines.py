"""The correlator's deadlines against a model: every request times out at
exactly its deadline, whatever the mix of timeouts, writes, answers,
cancellations and clock steps; the deadline lanes stay as small as the
requests in flight."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import NotSentTimeout, RequestTimeout
from ctrader_twisted.requests import Correlator

TIMEOUTS = [None, 1.0, 2.5, 5.0, 0.0]
STEPS = [0.0, 0.1, 0.5, 1.0, 2.5, 3.0, -1.0]  # the clock may step back

operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(TIMEOUTS)),
        st.tuples(st.sampled_from(["write", "write", "write", "unwrite", "answer", "cancel"]), st.integers(0, 30)),
        st.tuples(st.just("advance"), st.sampled_from(STEPS)),
    ),
    min_size=10,
    max_size=80,
)


class DeadlineModelTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(operations)
    def test_timesOutExactlyAtItsDeadline(self, ops: list[tuple[str, Any]]) -> None:
        clock = Clock()
        correlator = Correlator(clock)
        connection = object()
        requests: list[Any] = []
        outcomes: dict[int, tuple[str, float]] = {}
        # The model: each request's deadline (None: none) and whether it was written.
        deadlines: list[float | None] = []
        written: list[bool] = []
        expected: dict[int, tuple[str, float]] = {}

        def fired(result: Any, i: int) -> None:
            kind = result.type.__name__ if hasattr(result, "type") else "answer"
            outcomes[i] = (kind, clock.seconds())

        for op, arg in ops:
            if op == "create":
                request = correlator.create(2104, b"", None, raw=True, timeout=arg)
                i = len(requests)
                requests.append(request)
                request.deferred.addBoth(fired, i)
                deadlines.append(None if arg is None else clock.seconds() + arg)
                written.append(False)
                continue
            if op == "advance":
                now = clock.seconds() + arg
                for i, deadline in enumerate(deadlines):
                    if deadline is not None and deadline <= now and i not in expected:
                        kind = RequestTimeout if written[i] else NotSentTimeout
                        expected[i] = (kind.__name__, now)
                clock.advance(arg)
                continue
            if not requests:
                continue
            i = arg % len(requests)
            request = requests[i]
            if i in expected or request.done:
                continue
            if op == "write" and not written[i]:
                correlator.written(request, connection)
                written[i] = True
                if request.timeout is not None:
                    deadlines[i] = clock.seconds() + request.timeout
            elif op == "unwrite" and written[i]:
                correlator.unwritten(request)
                written[i] = False
            elif op == "answer":
                request.deferred.callback(None)
                expected[i] = ("answer", clock.seconds())
            elif op == "cancel":
                request.deferred.cancel()
                expected[i] = (CancelledError.__name__, clock.seconds())
            # zero timeouts expire on the next clock step, like any other
        self.assertEqual(outcomes, expected)
        live = sum(1 for r in requests if r.deadlineEntry is not None)
        self.assertLessEqual(correlator._entries, 2 * live + 64 + 1)
        self.assertEqual(correlator._live, live)

    def test_lanesStayAsSmallAsTheRequestsInFlight(self) -> None:
        """Behind one request that waits long, thousands answered out of its
        order leave no trail: the lanes are compacted."""
        clock = Clock()
        correlator = Correlator(clock)
        connection = object()
        slow = correlator.create(2104, b"", None, raw=True, timeout=5.0)
        correlator.written(slow, connection)
        for _ in range(5000):
            request = correlator.create(2104, b"", None, raw=True, timeout=5.0)
            correlator.written(request, connection)
            clock.advance(0.0001)
            request.deferred.callback(None)
            self.assertLessEqual(correlator._entries, 2 * correlator._live + 64 + 2)
        self.assertFalse(slow.done)
        clock.advance(5)
        self.failureResultOf(slow.deferred, RequestTimeout)
        self.assertEqual((correlator._entries, correlator._live), (0, 0))
