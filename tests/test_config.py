"""Tests for ctrader_twisted.cli.config: options over environment over
config file, and one-line errors that never show a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.cli.config import ConfigError, EndPoints, loadSettings, parseAccountIds


class ConfigTests(SynchronousTestCase):
    """Options over environment over config file; one-line errors."""

    def setUp(self) -> None:
        self.home = Path(self.mktemp())
        self.home.mkdir()
        self.environ = {"HOME": str(self.home)}

    def write(self, text: str, mode: int = 0o600) -> str:
        path = self.home / "config.toml"
        path.write_text(text)
        path.chmod(mode)
        return str(path)

    def test_noHostMeansSimulator(self) -> None:
        """No host anywhere: the bundled simulator, no credentials needed."""
        settings = loadSettings({}, self.environ)
        self.assertTrue(settings.simulated)
        self.assertIsNone(settings.credentials)
        self.assertIsNone(settings.configPath)

    def test_precedence(self) -> None:
        """Option over environment over config file, setting by setting; ``demo`` is an alias."""
        path = self.write(
            'host = "file-host"\nport = 6000\nclient_id = "file-id"\nclient_secret = "file-secret"\n'
            'access_token = "file-token"\naccounts = [5, 6]\nwebsocket = true\n'
        )
        environ = dict(self.environ, CTRADER_CLIENT_ID="env-id", CTRADER_ACCESS_TOKEN="env-token", CTRADER_PORT="7000")
        settings = loadSettings({"host": "demo", "accessToken": None}, environ, path)
        self.assertEqual(settings.host, EndPoints.PROTOBUF_DEMO_HOST)
        self.assertEqual(settings.port, 7000)
        self.assertTrue(settings.websocket)
        self.assertEqual(settings.accountIds, (5, 6))
        assert settings.credentials is not None
        self.assertEqual(settings.credentials.clientId, "env-id")
        self.assertEqual(settings.credentials.clientSecret, "file-secret")
        self.assertEqual(settings.credentials.accessToken, "env-token")
        self.assertEqual(settings.configPath, path)

    def test_defaultConfigFileAndSection(self) -> None:
        """The default config file is read when it exists; keys may sit under ``[ctrader]``."""
        directory = self.home / ".config" / "ctrader-twisted"
        directory.mkdir(parents=True)
        (directory / "config.toml").write_text('[ctrader]\nhost = "live"\nclient_id = "i"\nclient_secret = "s"\naccess_token = "t"\n')
        settings = loadSettings({}, self.environ)
        self.assertEqual(settings.host, EndPoints.PROTOBUF_LIVE_HOST)
        self.assertEqual(settings.configPath, str(directory / "config.toml"))

    def test_secretsNotInRepr(self) -> None:
        settings = loadSettings(
            {"host": "h", "clientId": "id", "clientSecret": "s3cret", "accessToken": "t0ken", "refreshToken": "r3fresh"},
            self.environ,
        )
        for secret in ("s3cret", "t0ken", "r3fresh"):
            self.assertNotIn(secret, repr(settings))

    def assertConfigError(self, *fragments: str, **kwargs: Any) -> str:
        with self.assertRaises(ConfigError) as raised:
            loadSettings(kwargs.get("options", {}), kwargs.get("environ", self.environ), kwargs.get("path"))
        message = str(raised.exception)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def test_malformedToml(self) -> None:
        """A TOML error names the file and position, never the text (it may hold a secret)."""
        path = self.write('client_secret = "hunter2\nhost = \n')
        message = self.assertConfigError("malformed config file", path=path)
        self.assertNotIn("hunter2", message)

    def test_unknownKey(self) -> None:
        """A misspelt key is an error (naming it), not silently ignored."""
        self.assertConfigError("unknown key 'clientSecret'", path=self.write('clientSecret = "x"\n'))

    def test_wrongTypes(self) -> None:
        """Each key's type is checked; the error never echoes a secret value."""
        path = str(self.home / "config.toml")
        self.assertConfigError(f"port in config file {path} must be an integer from 1 to 65535",
                               path=self.write('port = "5035"\n'))
        self.assertConfigError(f"websocket in config file {path} must be true or false", path=self.write("websocket = 1\n"))
        message = self.assertConfigError(f"access_token in config file {path} must be a non-empty string",
                                         path=self.write("access_token = 12\n"))
        self.assertNotIn("12", message.replace(path, ""))
        self.assertConfigError(f"accounts in config file {path} must list account ids", path=self.write('accounts = ["x"]\n'))

    def test_missingFile(self) -> None:
        self.assertConfigError("does not exist", path=str(self.home / "nope.toml"))

    def test_missingCredentials(self) -> None:
        """A host without a client secret: the error names the variable to set."""
        self.assertConfigError("no client secret", "CTRADER_CLIENT_SECRET",
                               options={"host": "demo", "clientId": "x", "accessToken": "t"})

    def test_badPortAndCaFile(self) -> None:
        self.assertConfigError("port", options={"port": 70000})
        self.assertConfigError("CA file", options={"caFile": str(self.home / "missing.pem")})

    def test_worldReadableSecretsWarn(self) -> None:
        """Secrets in a file others can read give a warning (chmod 600), not an error."""
        path = self.write('client_secret = "s"\n', mode=0o644)
        settings = loadSettings({}, self.environ, path)
        self.assertEqual(len(settings.warnings), 1)
        self.assertIn("chmod 600", settings.warnings[0])
        self.assertEqual(loadSettings({}, self.environ, self.write('client_secret = "s"\n')).warnings, ())

    def test_parseAccountIds(self) -> None:
        """Account ids from an int or comma-separated text, duplicates dropped; anything else refused."""
        self.assertEqual(parseAccountIds("1, 2,1", "x"), (1, 2))
        self.assertEqual(parseAccountIds(3, "x"), (3,))
        for bad in ("0", "a", True, [1.5j]):
            self.assertRaises(ConfigError, parseAccountIds, bad, "x")


class TokenFileTests(SynchronousTestCase):
    """The token file as a source of tokens: newer stored tokens win over configured ones."""

    def setUp(self) -> None:
        from ctrader_twisted.tokens import FileTokenStore, Tokens

        self.home = Path(self.mktemp())
        self.home.mkdir()
        self.environ = {"HOME": str(self.home), "CTRADER_HOST": "demo", "CTRADER_CLIENT_ID": "app",
                        "CTRADER_CLIENT_SECRET": "s"}
        self.path = self.home / ".config" / "ctrader-twisted" / "tokens.json"
        self.stored = Tokens.fromAnswer({"accessToken": "a2", "refreshToken": "r2", "expiresIn": 60}, 0).replacing("a1", "r1")
        FileTokenStore(self.path, key="app").save(self.stored)

    def credentials(self, **environ: str) -> Any:
        settings = loadSettings({}, dict(self.environ, **environ))
        assert settings.credentials is not None
        self.assertEqual(settings.tokenFile, str(self.path))
        return settings.credentials

    def test_storedTokensWhenNoneConfigured(self) -> None:
        credentials = self.credentials()
        self.assertEqual((credentials.accessToken, credentials.refreshToken, credentials.stored), ("a2", "r2", True))
        self.assertEqual(credentials.tokens, self.stored)
        self.assertNotIn("a2", repr(credentials))

    def test_storedTokensReplaceOlderConfiguredOnes(self) -> None:
        credentials = self.credentials(CTRADER_ACCESS_TOKEN="a1", CTRADER_REFRESH_TOKEN="r1")
        self.assertEqual(credentials.accessToken, "a2")

    def test_newConfiguredTokensWin(self) -> None:
        credentials = self.credentials(CTRADER_ACCESS_TOKEN="a9", CTRADER_REFRESH_TOKEN="r9")
        self.assertEqual((credentials.accessToken, credentials.refreshToken, credentials.stored), ("a9", "r9", False))

    def test_otherApplicationsTokensAreNotUsed(self) -> None:
        with self.assertRaises(ConfigError) as raised:
            loadSettings({}, dict(self.environ, CTRADER_CLIENT_ID="other"))
        self.assertIn("run `ctrader-twisted login`", str(raised.exception))

    def test_tokenFileSources(self) -> None:
        """``--token-file`` over ``CTRADER_TOKEN_FILE`` over ``token_file`` in the config file."""
        elsewhere = self.home / "elsewhere.json"
        config = self.home / "config.toml"
        config.write_text(f'token_file = "{elsewhere}"\n')
        config.chmod(0o600)
        self.assertEqual(loadSettings({"accessToken": "a9"}, self.environ, config).tokenFile, str(elsewhere))
        environ = dict(self.environ, CTRADER_TOKEN_FILE=str(self.path))
        self.assertEqual(loadSettings({}, environ, config).credentials.accessToken, "a2")  # type: ignore[union-attr]
        settings = loadSettings({"tokenFile": str(elsewhere), "accessToken": "a9"}, environ, config)
        self.assertEqual(settings.tokenFile, str(elsewhere))

    def test_malformedTokenFile(self) -> None:
        """A malformed token file is a configuration error naming it, never quoting it."""
        self.path.write_text('{"accessToken": "l3ak')
        with self.assertRaises(ConfigError) as raised:
            loadSettings({}, self.environ)
        self.assertIn(str(self.path), str(raised.exception))
        self.assertNotIn("l3ak", str(raised.exception))
