"""The pure frame splitter shared by the client and the simulator."""

from __future__ import annotations

import struct

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.framing import FrameSplitter, frame


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in zip(points, points[1:])]


class FrameSplitterTests(SynchronousTestCase):
    def test_wholeFramesInOneRead(self) -> None:
        splitter = FrameSplitter()
        self.assertEqual(splitter.feed(frame(b"ab") + frame(b"") + frame(b"cde")), [b"ab", b"", b"cde"])
        self.assertEqual(splitter.buffered, 0)

    def test_frameCutInsideItsPrefix(self) -> None:
        splitter = FrameSplitter()
        data = frame(b"hello")
        self.assertEqual(splitter.feed(data[:2]), [])
        self.assertEqual(splitter.feed(data[2:3]), [])
        self.assertEqual(splitter.buffered, 3)
        self.assertEqual(splitter.feed(data[3:]), [b"hello"])
        self.assertEqual(splitter.buffered, 0)

    def test_frameCutInsideItsBody(self) -> None:
        splitter = FrameSplitter()
        data = frame(b"0123456789") + frame(b"x")
        self.assertEqual(splitter.feed(data[:6]), [])
        self.assertEqual((splitter.buffered, splitter.missing), (6, 8))
        self.assertEqual(splitter.feed(data[6:9]), [])
        self.assertEqual(splitter.feed(data[9:]), [b"0123456789", b"x"])
        self.assertEqual((splitter.buffered, splitter.missing), (0, 0))

    def test_emptyReads(self) -> None:
        splitter = FrameSplitter()
        data = frame(b"abc")
        self.assertEqual(splitter.feed(b""), [])
        self.assertEqual(splitter.feed(data[:5]), [])
        self.assertEqual(splitter.feed(b""), [])
        self.assertEqual(splitter.feed(data[5:]), [b"abc"])

    def test_largeFrameInManySmallReadsIsLinear(self) -> None:
        """A 2 MB frame in 1-byte-per-read pieces after the first 64 KiB is
        held as the reads themselves, never re-copied per read."""
        body = bytes(range(256)) * 8192
        data = frame(body)
        splitter = FrameSplitter()
        splitter.feed(data[:65536])
        for i in range(65536, len(data) - 1, 4096):
            self.assertEqual(splitter.feed(data[i : min(i + 4096, len(data) - 1)]), [])
        self.assertEqual(splitter.feed(data[-1:]), [body])

    def test_lengthOverTheLimitStopsTheSplitter(self) -> None:
        splitter = FrameSplitter(maxLength=10)
        data = frame(b"ok") + struct.pack("!I", 11) + b"x" * 11 + frame(b"later")
        self.assertEqual(splitter.feed(data), [b"ok"])
        self.assertEqual(splitter.tooLarge, 11)
        self.assertEqual(splitter.feed(frame(b"more")), [])

    def test_lengthOverTheLimitInACutPrefix(self) -> None:
        splitter = FrameSplitter(maxLength=10)
        header = struct.pack("!I", 2**32 - 1)
        self.assertEqual(splitter.feed(header[:1]), [])
        self.assertEqual(splitter.feed(header[1:]), [])
        self.assertEqual(splitter.tooLarge, 2**32 - 1)

    def test_frameOfExactlyTheLimit(self) -> None:
        splitter = FrameSplitter(maxLength=3)
        self.assertEqual(splitter.feed(frame(b"abc")), [b"abc"])
        self.assertIsNone(splitter.tooLarge)

    def test_clearForgetsAnIncompleteFrame(self) -> None:
        splitter = FrameSplitter()
        splitter.feed(frame(b"abcdef")[:7])
        splitter.clear()
        self.assertEqual(splitter.buffered, 0)
        self.assertEqual(splitter.feed(frame(b"z")), [b"z"])

    def test_negativeLimitRefused(self) -> None:
        self.assertRaises(ValueError, FrameSplitter, -1)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.binary(max_size=300), max_size=20),
        st.lists(st.integers(min_value=0, max_value=10**6), max_size=40),
    )
    def test_anyCutGivesTheSameFrames(self, bodies: list[bytes], cuts: list[int]) -> None:
        """However a stream of frames is cut into reads, the frames come out
        whole, in order, and nothing stays buffered at the end."""
        stream = b"".join(frame(b) for b in bodies)
        splitter = FrameSplitter()
        out: list[bytes] = []
        for piece in _cut(stream, cuts):
            out.extend(splitter.feed(piece))
        self.assertEqual(out, bodies)
        self.assertEqual((splitter.buffered, splitter.missing), (0, 0))

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.binary(max_size=50), max_size=8),
        st.integers(min_value=51, max_value=2**32 - 1),
        st.lists(st.integers(min_value=0, max_value=10**6), max_size=10),
    )
    def test_oversizeAfterGoodFramesAnyCut(self, bodies: list[bytes], big: int, cuts: list[int]) -> None:
        """Frames before an oversize prefix are delivered; nothing after it."""
        stream = b"".join(frame(b) for b in bodies) + struct.pack("!I", big) + frame(b"after")
        splitter = FrameSplitter(maxLength=50)
        out: list[bytes] = []
        for piece in _cut(stream, cuts):
            out.extend(splitter.feed(piece))
        self.assertEqual(out, bodies)
        self.assertEqual(splitter.tooLarge, big)
