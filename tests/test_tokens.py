"""Tests for ctrader_twisted.tokens: the Tokens record, the stores, and
which tokens win between a token file and the configuration."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ctrader_twisted import tokens as tokensModule
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOARefreshTokenRes
from ctrader_twisted.tokens import (
    FileTokenStore,
    ITokenStore,
    MemoryTokenStore,
    Tokens,
    TokenStoreError,
    defaultTokenPath,
    fingerprint,
    preferStored,
)

NOW = 1_800_000_000.0


def makeTokens(n: int = 1, **changes: Any) -> Tokens:
    fields: dict[str, Any] = {
        "accessToken": f"access-{n}",
        "refreshToken": f"refresh-{n}",
        "tokenType": "bearer",
        "expiresIn": 2628000,
    }
    fields.update(changes)
    return Tokens.fromAnswer(fields, NOW)


class TokensTests(SynchronousTestCase):
    """The record: parsing answers, bounds, repr, lineage."""

    def test_fromAnswer(self) -> None:
        """The cTrader answer's fields, and expiresAt as aware UTC from the receipt time."""
        tokens = makeTokens()
        self.assertEqual((tokens.accessToken, tokens.refreshToken, tokens.expiresIn), ("access-1", "refresh-1", 2628000))
        self.assertEqual(tokens.expiresAt, datetime.fromtimestamp(NOW + 2628000, timezone.utc))
        self.assertIs(tokens.expiresAt.tzinfo, timezone.utc)
        self.assertFalse(tokens.expired(NOW))
        self.assertTrue(tokens.expired(NOW + 2628000))

    def test_snakeCaseAnswer(self) -> None:
        """OAuth 2.0 spellings are accepted too."""
        tokens = Tokens.fromAnswer(
            {"access_token": "a", "refresh_token": "r", "token_type": "bearer", "expires_in": 60}, NOW
        )
        self.assertEqual((tokens.accessToken, tokens.refreshToken, tokens.expiresIn), ("a", "r", 60))

    def test_hostileAnswers(self) -> None:
        """Missing tokens and hostile numbers are refused; the message names the field, never a token."""
        cases = {
            "accessToken": {"accessToken": None},
            "refreshToken": {"refreshToken": ""},
            "expiresIn": {"expiresIn": float("nan")},
        }
        for field, change in cases.items():
            with self.assertRaises(ValueError) as raised:
                makeTokens(**change)
            self.assertIn(field, str(raised.exception))
        for bad in (True, -5, 0, float("inf"), 1.5, "60", 10**12):
            self.assertRaises(ValueError, makeTokens, expiresIn=bad)
        self.assertRaises(ValueError, makeTokens, accessToken="x" * 5000)
        self.assertRaises(ValueError, makeTokens, accessToken="two words")
        self.assertRaises(ValueError, makeTokens, refreshToken="line\nbreak")
        with self.assertRaises(ValueError) as raised:
            makeTokens(accessToken=12345)
        self.assertNotIn("12345", str(raised.exception))

    def test_fromRefreshRes(self) -> None:
        res = ProtoOARefreshTokenRes(accessToken="a2", refreshToken="r2", tokenType="bearer", expiresIn=100)
        tokens = Tokens.fromRefreshRes(res, NOW)
        self.assertEqual((tokens.accessToken, tokens.refreshToken), ("a2", "r2"))
        self.assertEqual(tokens.expiresAt.timestamp(), NOW + 100)

    def test_reprHidesSecrets(self) -> None:
        tokens = makeTokens().replacing("old-access")
        text = repr(tokens) + str(tokens)
        for secret in ("access-1", "refresh-1", fingerprint("old-access")):
            self.assertNotIn(secret, text)
        self.assertIn("expiresAt", text)

    def test_jsonRoundTrip(self) -> None:
        tokens = makeTokens().replacing("a0", "r0")
        again = Tokens.fromJson(json.loads(json.dumps(tokens.toJson())))
        self.assertEqual(again, tokens)

    def test_malformedRecords(self) -> None:
        good = makeTokens().toJson()
        for change in ({"expiresAt": "yesterday"}, {"expiresAt": "2026-01-01T00:00:00"}, {"replaces": "x"},
                       {"expiresIn": -1}, {"accessToken": None}):
            self.assertRaises(ValueError, Tokens.fromJson, dict(good, **change))
        self.assertRaises(ValueError, Tokens.fromJson, ["not", "a", "record"])

    def test_lineage(self) -> None:
        """A pair records fingerprints of the tokens it replaces, bounded, never the tokens."""
        tokens = makeTokens(2).replacing("access-1", "refresh-1", None)
        self.assertTrue(tokens.succeeds("access-1"))
        self.assertTrue(tokens.succeeds("refresh-1"))
        self.assertFalse(tokens.succeeds("access-2"))
        self.assertNotIn("access-1", json.dumps(tokens.toJson()))
        many = tokens.replacing(*[f"t{i}" for i in range(100)])
        self.assertEqual(len(many.replaces), tokensModule.MAX_REPLACED)
        self.assertTrue(many.succeeds("t99"))
        self.assertFalse(many.succeeds("access-1"))


class PreferStoredTests(SynchronousTestCase):
    """Stored tokens newer than the configured ones win; unknown configured tokens win."""

    def test_rules(self) -> None:
        stored = makeTokens(2).replacing("access-1", "refresh-1")
        self.assertFalse(preferStored(None, "access-1", None))
        self.assertTrue(preferStored(stored, None, None))  # nothing configured
        self.assertTrue(preferStored(stored, "access-1", "refresh-1"))  # replaced since
        self.assertTrue(preferStored(stored, None, "refresh-1"))
        self.assertTrue(preferStored(stored, "access-2", None))  # the same tokens
        self.assertFalse(preferStored(stored, "access-9", "refresh-9"))  # new tokens, from the playground


class MemoryStoreTests(SynchronousTestCase):
    def test_saveAndLoad(self) -> None:
        store = MemoryTokenStore()
        self.assertTrue(verifyObject(ITokenStore, store))
        self.assertIsNone(store.load())
        store.save(makeTokens())
        self.assertEqual(store.load(), makeTokens())
        self.assertEqual(store.saves, 1)
        self.assertNotIn("access-1", repr(store))
        self.assertRaises(TypeError, store.save, {"accessToken": "x"})


class FileStoreTests(SynchronousTestCase):
    """The file store: atomic, private, one entry per application."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()) / "config" / "ctrader-twisted"
        self.path = self.directory / "tokens.json"

    def test_defaultPath(self) -> None:
        """Beside the command line's config file, XDG honoured."""
        self.assertEqual(defaultTokenPath({"HOME": "/home/u"}), Path("/home/u/.config/ctrader-twisted/tokens.json"))
        self.assertEqual(defaultTokenPath({"XDG_CONFIG_HOME": "/x"}), Path("/x/ctrader-twisted/tokens.json"))
        self.assertEqual(FileTokenStore(key="k").path, defaultTokenPath())

    def test_roundTripAndModes(self) -> None:
        """Saved with mode 0600 in a 0700 directory it creates; loads back equal."""
        store = FileTokenStore(self.path, key="app")
        self.assertTrue(verifyObject(ITokenStore, store))
        self.assertIsNone(store.load())
        store.save(makeTokens())
        self.assertEqual(store.load(), makeTokens())
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(self.directory.stat().st_mode), 0o700)
        self.assertEqual([p.name for p in self.directory.iterdir() if p.name.endswith(".tmp")], [])
        self.assertNotIn("access-1", repr(store))

    def test_applicationsKeptApart(self) -> None:
        """Two applications in one file: saving one keeps the other."""
        FileTokenStore(self.path, key="a").save(makeTokens(1))
        FileTokenStore(self.path, key="b").save(makeTokens(2))
        FileTokenStore(self.path, key="a").save(makeTokens(3))
        self.assertEqual(FileTokenStore(self.path, key="a").load(), makeTokens(3))
        self.assertEqual(FileTokenStore(self.path, key="b").load(), makeTokens(2))
        self.assertIsNone(FileTokenStore(self.path, key="c").load())

    def test_failedWriteKeepsTheOldFile(self) -> None:
        """A failure while writing leaves the previous file whole and no temporary file."""
        store = FileTokenStore(self.path, key="app")
        store.save(makeTokens(1))
        before = self.path.read_bytes()

        def failingFsync(fd: int) -> None:
            raise OSError(28, "No space left on device")

        self.patch(os, "fsync", failingFsync)
        with self.assertRaises(TokenStoreError) as raised:
            store.save(makeTokens(2))
        self.assertIn("No space left on device", str(raised.exception))
        self.assertNotIn("access-2", str(raised.exception))
        self.assertEqual(self.path.read_bytes(), before)
        self.assertEqual(sorted(p.name for p in self.directory.iterdir()), ["tokens.json", "tokens.json.lock"])

    def test_failedReplaceKeepsTheOldFile(self) -> None:
        store = FileTokenStore(self.path, key="app")
        store.save(makeTokens(1))

        def failingReplace(source: Any, target: Any) -> None:
            raise OSError(13, "Permission denied")

        self.patch(os, "replace", failingReplace)
        self.assertRaises(TokenStoreError, store.save, makeTokens(2))
        self.assertEqual(FileTokenStore(self.path, key="app").load(), makeTokens(1))
        self.assertFalse([p for p in self.directory.iterdir() if p.name.endswith(".tmp")])

    def test_malformedFile(self) -> None:
        """Loading a malformed file fails with the path and never the content;
        saving moves it aside rather than losing the new tokens."""
        self.directory.mkdir(parents=True)
        self.path.write_text('{"secret-looking": "s3cr3t"')
        store = FileTokenStore(self.path, key="app")
        with self.assertRaises(TokenStoreError) as raised:
            store.load()
        self.assertIn(str(self.path), str(raised.exception))
        self.assertNotIn("s3cr3t", str(raised.exception))
        store.save(makeTokens())
        self.assertEqual(store.load(), makeTokens())
        self.assertIn("s3cr3t", (self.directory / "tokens.json.bad").read_text())

    def test_otherMalformations(self) -> None:
        self.directory.mkdir(parents=True)
        store = FileTokenStore(self.path, key="app")
        for content in ('["list"]', '{"format": "other", "applications": {}}',
                        '{"format": "ctrader-twisted tokens", "version": 9, "applications": {}}', "\xff"):
            self.path.write_bytes(content.encode("latin-1"))
            self.assertRaises(TokenStoreError, store.load)
        self.path.write_text(json.dumps({"format": "ctrader-twisted tokens", "version": 1,
                                         "applications": {"app": {"accessToken": "a"}}}))
        with self.assertRaises(TokenStoreError) as raised:
            store.load()
        self.assertIn("'app' is malformed", str(raised.exception))
        self.path.write_bytes(b" " * (tokensModule.MAX_FILE_SIZE + 1))
        self.assertRaises(TokenStoreError, store.load)

    def test_unreadableDirectory(self) -> None:
        """A token path whose parent is a file cannot be written: a TokenStoreError naming it."""
        blocker = Path(self.mktemp())
        blocker.write_text("a file")
        store = FileTokenStore(blocker / "tokens.json", key="app")
        with self.assertRaises(TokenStoreError) as raised:
            store.save(makeTokens())
        self.assertIn(str(blocker), str(raised.exception))

    def test_badKey(self) -> None:
        self.assertRaises(ValueError, FileTokenStore, self.path, "")
        self.assertRaises(TypeError, FileTokenStore(self.path).save, "tokens")
