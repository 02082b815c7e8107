"""The documentation stays true: strict configuration, API pages for every
public module, snippets that run (or are marked as fragments and compile),
the simulator's symbol table from its data, the troubleshooting page's
messages as the library and the command line write them, a README that
renders. The strict Sphinx build itself runs in CI (``.ci/run``)."""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TimeoutError as ConnectTimeoutError
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from ctrader_twisted import errors

from .util import ROOT, referenceDir

DOCS = ROOT / "docs"
API = DOCS / "api"
EXT = DOCS / "_ext"

#: Pages owned by another part of the project whose bare ``::`` blocks are
#: left as they are (the command line's page).
BARE_BLOCKS_ALLOWED = {"cli.rst"}

#: Words that stand for a symbol in command synopses.
PLACEHOLDERS = {"SYMBOL", "SYMBOLS", "NAME"}

#: Languages a code block may declare.
LANGUAGES = {"python", "pycon", "shell", "console", "text", "toml", "json", "ini"}

#: Modules that are not part of the public API: the generated messages, the
#: command line's internals, and the simulator's internals (its public names
#: are documented). A new module must be documented or listed here.
INTERNAL_MODULES = re.compile(
    r"^ctrader_twisted\.("
    r"messages(\..*)?"
    r"|cli(\..*)?"
    r"|_version"
    r"|simulator\.(__main__|execution|ticker|market|accounthistory|burst|tap)"
    r"|simulator\.handlers\.(auth|refdata|marketdata|trading)"
    r")$"
)


def _extension(name: str) -> Any:
    """A local Sphinx extension module from ``docs/_ext``."""
    if str(EXT) not in sys.path:
        sys.path.insert(0, str(EXT))
    return importlib.import_module(name)


def _sphinxConf() -> dict[str, Any]:
    """The names ``docs/conf.py`` defines (Sphinx is not needed to read them)."""
    namespace: dict[str, Any] = {"__file__": str(DOCS / "conf.py")}
    cwd = os.getcwd()
    os.chdir(DOCS)  # conf.py puts ".." and "_ext" on the path, relative to docs/
    try:
        exec(compile((DOCS / "conf.py").read_text(), str(DOCS / "conf.py"), "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def _flat(text: str) -> str:
    """Page text as one line: markup quotes gone, whitespace collapsed."""
    return " ".join(text.replace("``", "").split())


# --- code blocks ---------------------------------------------------------------------------


@dataclass
class Block:
    """One code block of a page."""

    page: str
    line: int
    language: str
    caption: str
    code: str

    def where(self) -> str:
        return f"{self.page}:{self.line}"


_DIRECTIVE = re.compile(r"^(\s*)\.\. (code-block|code|sourcecode)::\s*(\S*)\s*$")


def codeBlocks(path: Path) -> list[Block]:
    """The ``code-block`` directives of *path*, with their captions and code."""
    lines = path.read_text().split("\n")
    blocks = []
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        options: dict[str, str] = {}
        body: list[str] = []
        j = index + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            stripped = lines[j].strip()
            if not body and stripped.startswith(":") and not any(b.strip() for b in body):
                name, _, value = stripped[1:].partition(":")
                options[name] = value.strip()
            else:
                body.append(lines[j])
            j += 1
        code = textwrap.dedent("\n".join(body)).strip("\n")
        blocks.append(Block(path.name, index + 1, match.group(3), options.get("caption", ""), code))
    return blocks


def bareLiteralBlocks(path: Path) -> list[int]:
    """Lines ending a paragraph with ``::`` (a literal block without a language)."""
    found = []
    for index, line in enumerate(path.read_text().split("\n")):
        stripped = line.strip()
        if stripped.endswith("::") and not stripped.startswith(".."):
            found.append(index + 1)
    return found


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.rst")) + [ROOT / "README.rst"]


def pythonBlocks() -> list[Block]:
    return [b for page in pages() for b in codeBlocks(page) if b.language == "python"]


def _runImports(code: str, where: str) -> None:
    """Run the import statements of *code*: names of this project and of
    Twisted must exist; a third-party module that is not installed here
    (the official SDK, Redis) is let go."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        statement = ast.unparse(node)
        try:
            exec(statement, {})
        except ModuleNotFoundError as error:
            if (error.name or "").split(".")[0] in ("ctrader_twisted", "twisted"):
                raise AssertionError(f"{where}: {statement}: {error}") from None
        except ImportError as error:
            raise AssertionError(f"{where}: {statement}: {error}") from None


class CodeBlockTests(SynchronousTestCase):
    """Every snippet of the pages (and the README) runs, or is marked as a
    fragment and compiles, with imports that resolve."""

    def test_everyBlockNamesItsLanguage(self) -> None:
        """No bare ``::`` block (highlighted as Python whatever it holds)."""
        bare = [f"{p.name}:{n}" for p in pages() if p.name not in BARE_BLOCKS_ALLOWED for n in bareLiteralBlocks(p)]
        self.assertEqual(bare, [], "use '.. code-block:: LANGUAGE' instead of '::'")
        unknown = [b.where() for p in pages() for b in codeBlocks(p) if b.language not in LANGUAGES]
        self.assertEqual(unknown, [])

    def test_parserFindsBlocks(self) -> None:
        """The checks below see the blocks (a parser finding none would pass them all)."""
        blocks = pythonBlocks()
        self.assertGreater(len([b for b in blocks if b.caption.startswith("Fragment")]), 15)
        self.assertIn("README.rst", {b.page for b in blocks})
        self.assertTrue(any(b.language == "pycon" for p in pages() for b in codeBlocks(p)))

    def test_fragmentsCompileAndImport(self) -> None:
        """A fragment (its caption says so, and what it lacks) is valid
        Python, top-level ``await`` allowed, and what it imports exists."""
        fragments = [b for b in pythonBlocks() if b.caption.startswith("Fragment")]
        for block in fragments:
            try:
                compile(block.code, block.where(), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            except SyntaxError as error:
                self.fail(f"{block.where()}: {error}")
            _runImports(block.code, block.where())

    def test_captionsSayFragment(self) -> None:
        """A caption on a Python block marks a fragment; anything else runs."""
        odd = [b.where() for b in pythonBlocks() if b.caption and not b.caption.startswith("Fragment: ")]
        self.assertEqual(odd, [])

    def test_runnableBlocksRun(self) -> None:
        """A Python block that is not a fragment runs as it is, as a program
        (the README's quick start starts the simulator and stops)."""
        runnable = [b for b in pythonBlocks() if not b.caption]
        self.assertTrue(runnable)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for block in runnable:
            done = subprocess.run(
                [sys.executable, "-c", block.code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
            )
            self.assertEqual(done.returncode, 0, f"{block.where()}:\n{done.stderr}")
            if "print(" in block.code:
                self.assertTrue(done.stdout.strip(), f"{block.where()} printed nothing")
                self.assertNotIn("failed:", done.stdout, block.where())

    def test_consoleSessionsAreDoctests(self) -> None:
        """``pycon`` blocks are interactive sessions: their output is checked."""
        sessions = [b for p in pages() for b in codeBlocks(p) if b.language == "pycon"]
        for block in sessions:
            test = doctest.DocTestParser().get_doctest(block.code, {}, block.where(), block.page, block.line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            runner.run(test, out=lambda text: None)
            self.assertEqual(runner.failures, 0, f"{block.where()}: the session's output differs")
            self.assertGreater(runner.tries, 0)

    def test_literalIncludesExist(self) -> None:
        for page in pages():
            for target in re.findall(r"^\s*\.\. literalinclude:: (\S+)", page.read_text(), re.M):
                self.assertTrue((page.parent / target).exists(), f"{page.name}: {target}")

    def test_badFragmentIsCaught(self) -> None:
        """The import check fails on a name this project does not have."""
        with self.assertRaises(AssertionError):
            _runImports("from ctrader_twisted import NoSuchName", "test")
        with self.assertRaises(AssertionError):
            _runImports("import ctrader_twisted.no_such_module", "test")
        _runImports("from ctrader_open_api import Client", "test")  # not installed here: let go


# --- API pages -----------------------------------------------------------------------------


def documentedModules() -> set[str]:
    """Modules an API page documents (``automodule`` or ``py:module``)."""
    found = set()
    for page in API.glob("*.rst"):
        found.update(re.findall(r"^\.\. (?:automodule|py:module):: (\S+)", page.read_text(), re.M))
    return found


def publicModules() -> list[str]:
    import ctrader_twisted

    names = ["ctrader_twisted"]
    for info in pkgutil.walk_packages(ctrader_twisted.__path__, "ctrader_twisted."):
        if any(part.startswith("_") and part != "__main__" for part in info.name.split(".")):
            continue
        if not INTERNAL_MODULES.match(info.name):
            names.append(info.name)
    return names


class ApiPagesTests(SynchronousTestCase):
    def test_everyPublicModuleHasAPage(self) -> None:
        missing = sorted(set(publicModules()) - documentedModules())
        self.assertEqual(missing, [], "add an API page (docs/api/) or list the module as internal")

    def test_pagesNameRealModules(self) -> None:
        for name in documentedModules():
            importlib.import_module(name)

    def test_everyPageIsInTheIndex(self) -> None:
        """Each API page is reachable from ``docs/api/index.rst`` (or its parent page)."""
        listed = set()
        for page in API.glob("*.rst"):
            for block in re.findall(r"\.\. toctree::\n((?:   .*\n|\n)+)", page.read_text()):
                listed.update(line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith(":"))
        pagesFound = {p.stem for p in API.glob("*.rst")} - {"index"}
        self.assertEqual(sorted(pagesFound - listed), [])

    def test_interfacesAreDocumented(self) -> None:
        """``automodule`` skips zope interfaces: each needs an ``autointerface``."""
        from zope.interface.interface import InterfaceClass

        text = "\n".join(p.read_text() for p in API.glob("*.rst"))
        for name in documentedModules():
            module = importlib.import_module(name)
            for attr in getattr(module, "__all__", ()):
                if isinstance(getattr(module, attr, None), InterfaceClass):
                    self.assertRegex(text, rf"\.\. autointerface:: (\S*\.)?{attr}\b", f"{name}.{attr}")

    def test_internalListIsNotStale(self) -> None:
        """Each pattern of the internal list still names a module."""
        import ctrader_twisted

        allNames = [i.name for i in pkgutil.walk_packages(ctrader_twisted.__path__, "ctrader_twisted.")]
        for part in ("messages", "cli", "simulator.execution", "simulator.handlers.trading"):
            self.assertIn(f"ctrader_twisted.{part}", allNames)


class ConfigurationTests(SynchronousTestCase):
    """The build is strict, offline, themed, and run by CI."""

    def test_strictAndThemed(self) -> None:
        conf = _sphinxConf()
        self.assertIs(conf["nitpicky"], True)
        self.assertEqual(conf["html_theme"], "furo")
        self.assertRegex(conf["copyright"], r"\d{4}, \S")
        self.assertNotIn("sphinx.ext.intersphinx", conf["extensions"])  # offline

    def test_ignoredNamesAreOtherProjects(self) -> None:
        """No ignore pattern silences a name this project documents."""
        conf = _sphinxConf()
        patterns = [(re.compile(kind), re.compile(target)) for kind, target in conf["nitpick_ignore_regex"]]
        ours = []
        for name in documentedModules():
            module = importlib.import_module(name)
            ours += [name] + [f"{name}.{attr}" for attr in getattr(module, "__all__", ()) if not attr.startswith("__")]
        silenced = [n for n in ours for kind, target in patterns if kind.fullmatch("py:class") and target.fullmatch(n)]
        self.assertEqual(silenced, [])

    def test_ciBuildsTheDocs(self) -> None:
        script = (ROOT / ".ci" / "run").read_text()
        self.assertRegex(script, r"pip\" install -q '\.\[dev,docs\]'")
        build = re.search(r"sphinx-build\"? ([^|]*)", script)
        assert build is not None
        for flag in ("-W", "-n", "-E"):
            self.assertIn(flag, build.group(1).split())
        self.assertIn("docs build failed", script)

    def test_docsExtraAndIgnoredOutput(self) -> None:
        setup = (ROOT / "setup.cfg").read_text()
        extra = re.search(r"^docs =\n((?:    .*\n)+)", setup, re.M)
        assert extra is not None
        for package in ("sphinx", "furo", "repoze.sphinx.autointerface", "readme_renderer"):
            self.assertIn(package, extra.group(1))
        self.assertIn("docs/_build/", (ROOT / ".gitignore").read_text().splitlines())

    def test_cssForTheSymbolTable(self) -> None:
        conf = _sphinxConf()
        for name in conf["html_css_files"]:
            self.assertTrue((DOCS / "_static" / name).exists(), name)


# --- references the build resolves through the local extensions -------------------------------


class RefnamesTests(SynchronousTestCase):
    """``docs/_ext/refnames.py`` finds what Python would find, and nothing else."""

    def setUp(self) -> None:
        try:
            import sphinx  # noqa: F401
        except ImportError:
            raise SkipTest("Sphinx is not installed (pip install '.[docs]')") from None
        self.refnames = _extension("refnames")

    def test_reexports(self) -> None:
        name = self.refnames.documentedName
        self.assertEqual(name("ctrader_twisted.Client", None, None), "ctrader_twisted.client.Client")
        self.assertEqual(name("ctrader_twisted.trading.Trader.buy", None, None), "ctrader_twisted.trading.trader.Trader.buy")
        self.assertEqual(name("ctrader_twisted.simulator.Simulator", None, None), "ctrader_twisted.simulator.server.Simulator")

    def test_namesImportedWhereWritten(self) -> None:
        name = self.refnames.documentedName
        self.assertEqual(name("TcpProtocol", "ctrader_twisted.client", "Client"), "ctrader_twisted.tcp.TcpProtocol")
        self.assertEqual(name("Subscription.cancel", "ctrader_twisted.trading.trader", None),
                         "ctrader_twisted.trading.streams.Subscription.cancel")

    def test_unknownNamesStayUnknown(self) -> None:
        name = self.refnames.documentedName
        self.assertIsNone(name("ctrader_twisted.NoSuchThing", None, None))
        self.assertIsNone(name("NoSuchThing", "ctrader_twisted.client", None))
        self.assertIsNone(name("retryAfter", "ctrader_twisted.errors", "BlockedPayloadTypeError"))


# --- the simulator's symbols -------------------------------------------------------------------


class SymbolTableTests(SynchronousTestCase):
    """The table in ``docs/simulator.rst`` is the simulator's, from its data."""

    def servedSymbols(self) -> dict[int, str]:
        from ctrader_twisted.testing import SimulatedServer

        server = SimulatedServer()
        client = server.connect(server.managedClient())
        account = server.simulator.accountIds[0]
        server.resultOf(client.authorizeAccount(account, server.simulator.accessToken))
        answer = server.resultOf(client.request("ProtoOASymbolsListReq", ctidTraderAccountId=account))
        server.resultOf(client.stopService())
        return {s.symbolId: s.symbolName for s in answer.symbol}

    def test_rowsAreWhatTheSimulatorServes(self) -> None:
        rows = _extension("simsymbols").symbolRows()
        self.assertEqual({int(r[0]): r[1] for r in rows}, self.servedSymbols())
        eurusd = next(r for r in rows if r[1] == "EURUSD")
        self.assertEqual(eurusd[4:], ["5", "4", "100,000", "0.01, 0.01, 1000", "1.14811 / 1.14813"])

    def test_tableFollowsTheData(self) -> None:
        """A symbol added to the data appears in the table (it is not written by hand)."""
        from ctrader_twisted.simulator import data

        added = dict(data.SYMBOLS[1], light=dict(data.SYMBOLS[1]["light"], symbolName="TESTUSD"))
        self.patch(data, "SYMBOLS", {**data.SYMBOLS, 999: added})
        table = "\n".join(_extension("simsymbols").symbolTable())
        self.assertIn("``TESTUSD``", table)
        self.assertIn("* - 999", table)

    def test_pageUsesTheDirective(self) -> None:
        self.assertIn("\n.. simulator-symbols::\n", (DOCS / "simulator.rst").read_text())

    def test_streamCommandsNameTheSimulatorsSymbols(self) -> None:
        """Commands that stream from the bundled simulator (no ``--host``)
        name only symbols it has."""
        from ctrader_twisted.simulator.data import SYMBOLS

        names = {s["light"]["symbolName"] for s in SYMBOLS.values()}
        commands = []
        for page in pages():
            for line in page.read_text().splitlines():
                for command in re.findall(r"ctrader-twisted stream ([^`|&]*)|--symbols ([A-Za-z0-9.,]+)", line):
                    text = command[0] or command[1]
                    if "--host" in line:
                        continue
                    symbols = [w for w in re.split(r"[\s,]+", text.split("--")[0])
                               if re.fullmatch(r"[A-Z][A-Za-z0-9.]+", w) and w not in PLACEHOLDERS]
                    commands.append((page.name, symbols))
        self.assertTrue(commands)
        for page, symbols in commands:
            self.assertLessEqual(set(symbols), names, f"{page}: {symbols}")

    def test_directiveRenders(self) -> None:
        """The directive in a real (tiny) Sphinx build: a table of every symbol."""
        try:
            from sphinx.application import Sphinx
        except ImportError:
            raise SkipTest("Sphinx is not installed (pip install '.[docs]')") from None
        source = Path(self.mktemp())
        source.mkdir(parents=True)
        (source / "conf.py").write_text(f"import sys\nsys.path.insert(0, {str(EXT)!r})\nextensions = ['simsymbols']\n")
        (source / "index.rst").write_text("Symbols\n=======\n\n.. simulator-symbols::\n")
        out = source / "out"
        app = Sphinx(str(source), str(source), str(out), str(out / ".doctrees"), "html",
                     status=None, warning=None, warningiserror=True, freshenv=True)
        app.build()
        html = (out / "index.html").read_text()
        for name in ("EURUSD", "GBPUSD", "XAUUSD", "US100.cash", "GER40.cash"):
            self.assertIn(f">{name}<", html)


# --- the pages the issue asks for -----------------------------------------------------------


class PagesTests(SynchronousTestCase):
    """Credentials, asyncio and Jupyter, troubleshooting: there, and true."""

    def headings(self, page: str) -> list[str]:
        lines = (DOCS / page).read_text().splitlines()
        return [lines[i - 1].strip() for i, line in enumerate(lines)
                if i and re.fullmatch(r"([-=~^])\1+", line.strip()) and lines[i - 1].strip()]

    def test_credentials(self) -> None:
        from ctrader_twisted.cli.login import DEFAULT_REDIRECT_URI
        from ctrader_twisted.endpoints import EndPoints
        from ctrader_twisted.tokens import defaultTokenPath

        self.assertEqual(self.headings("credentials.rst")[1:6], [
            "The application page", "Tokens from the playground", "``ctrader-twisted login``",
            "Where tokens are kept", "In your own program",
        ])
        text = (DOCS / "credentials.rst").read_text()
        for fact in (DEFAULT_REDIRECT_URI, EndPoints.AUTH_URI, EndPoints.TOKEN_URI, "CTRADER_TOKEN_FILE", "XDG_CONFIG_HOME"):
            self.assertIn(fact, text)
        home = str(Path("/home/me"))
        self.assertEqual(str(defaultTokenPath({"HOME": home})), home + "/.config/ctrader-twisted/tokens.json")
        self.assertIn("~/.config/ctrader-twisted/tokens.json", text)

    def test_asyncioAndJupyter(self) -> None:
        text = (DOCS / "asyncio.rst").read_text()
        self.assertIn(".. literalinclude:: examples/asyncio_recipe.py", text)
        self.assertIn("In a notebook", self.headings("asyncio.rst"))

    def test_troubleshootingTopics(self) -> None:
        self.assertEqual(self.headings("troubleshooting.rst")[1:], [
            "Where errors show up", "Cannot connect at all", "Wrong port for the transport",
            "Certificates and TLS", "Demo or live: the wrong endpoint", "Credentials and tokens",
            "Rate limits", "Maintenance", "The client is not ready", "The connection drops",
        ])
        text = _flat((DOCS / "troubleshooting.rst").read_text())
        for fact in ("CANT_ROUTE_REQUEST", "REQUEST_FREQUENCY_EXCEEDED", "BLOCKED_PAYLOAD_TYPE",
                     "CH_ACCESS_TOKEN_INVALID", "ctrader-twisted login", "trustRoot", "--ca-file",
                     "SERVER_IS_UNDER_MAINTENANCE", "NotReadyError", "HandshakeTimeoutError"):
            self.assertIn(fact, text)


# --- troubleshooting ---------------------------------------------------------------------------


class TroubleshootingTests(TestCase):
    """The messages quoted on the troubleshooting page are the ones users get."""

    def page(self) -> str:
        return _flat((DOCS / "troubleshooting.rst").read_text())

    def assertQuoted(self, message: str) -> None:
        if _flat(message) not in self.page():
            self.fail(f"docs/troubleshooting.rst does not quote {message!r} (update the page)")

    def test_commandLineMessages(self) -> None:
        from OpenSSL.SSL import Error as SSLError
        from service_identity import VerificationError
        from service_identity.hazmat import DNS_ID, DNSMismatch

        from ctrader_twisted.cli.status import PREFIX, describeError

        def said(error: BaseException, *, shown: str | None = None) -> str:
            text = describeError(error, "HOST", "PORT")  # type: ignore[arg-type]
            return text.replace(str(error), shown) if shown is not None else text

        self.assertQuoted(PREFIX + "error: " + said(DNSLookupError("HOST")))
        self.assertQuoted(PREFIX + "error: " + said(ConnectionRefusedError()))
        self.assertQuoted(PREFIX + "error: " + said(ConnectTimeoutError()))
        self.assertQuoted(PREFIX + "error: " + said(SSLError([("SSL routines", "", "certificate verify failed")])))
        self.assertQuoted(said(VerificationError(errors=[DNSMismatch(mismatched_id=DNS_ID("host"))])))
        self.assertQuoted(said(errors.ClientAuthenticationError("CH_CLIENT_AUTH_FAILURE", "...")))
        self.assertQuoted(said(errors.AccessTokenInvalidError("CH_ACCESS_TOKEN_INVALID", "...")))
        self.assertQuoted(said(errors.AccountNotAuthorizedError("ACCOUNT_NOT_AUTHORIZED", "x"), shown="..."))
        self.assertQuoted(said(errors.OpenApiError("CANT_ROUTE_REQUEST", "...")))

    def test_libraryMessages(self) -> None:
        self.assertQuoted(str(errors.RequestTimeout("ProtoOAApplicationAuthReq", "ct2", 5)))
        self.assertQuoted(str(errors.HandshakeTimeoutError(30)))
        self.assertQuoted(str(errors.HandshakeTimeoutError(30, "TLS and WebSocket opening handshake"))
                          .replace(" did not finish within 30 s", ""))
        self.assertQuoted(str(errors.SilentConnectionError(60)))
        self.assertQuoted(str(errors.NotReadyError(1, Exception("REASON"))).replace("within 1 s", "within N s"))
        self.assertQuoted("the last attempt failed: [('SSL routines', '', 'certificate verify failed')]")

    def test_errorsPageListsEveryError(self) -> None:
        """docs/errors.rst names every exception, and every code each server
        error class stands for."""
        text = (DOCS / "errors.rst").read_text()
        for name in errors.__all__:
            cls = getattr(errors, name)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                self.assertIn(name, text)
                for code in getattr(cls, "codes", ()):
                    self.assertIn(f"``{code}``", text, name)

    def test_namedErrorsExist(self) -> None:
        for name in re.findall(r"ctrader_twisted\.errors\.(\w+)", (DOCS / "troubleshooting.rst").read_text()):
            self.assertTrue(issubclass(getattr(errors, name), errors.CTraderError), name)

    def test_wrongPortSymptoms(self) -> None:
        """What the page says a transport on the other transport's port does,
        against the simulator in memory."""
        from ctrader_twisted import TcpProtocol
        from ctrader_twisted.testing import SimulatedServer
        from ctrader_twisted.websocket import WebSocketProtocol

        for served, protocol, expected in (
            ("ws", TcpProtocol, "no answer to ProtoOAApplicationAuthReq"),
            ("tcp", WebSocketProtocol, "without previous WebSocket closing handshake"),
        ):
            server = SimulatedServer(transport=served)
            client = server.managedClient(protocol=protocol, retryPolicy=lambda attempt: 1.0)
            client.startService()
            with self.assertRaises(errors.NotReadyError) as caught:
                server.resultOf(client.whenReady(timeout=8), within=20)
            self.assertIn(expected, str(caught.exception))
            self.assertQuoted(expected)
            server.resultOf(client.stopService())


# --- the README, skip messages -----------------------------------------------------------------


class ReadmeTests(SynchronousTestCase):
    def test_rendersForPyPI(self) -> None:
        """The README is the package's long description: it renders without
        a warning (as PyPI renders it, when readme_renderer is installed)."""
        text = (ROOT / "README.rst").read_text()
        try:
            from readme_renderer.rst import render
        except ImportError:
            render = None
        if render is not None:
            import io

            messages = io.StringIO()
            self.assertIsNotNone(render(text, stream=messages), messages.getvalue())
            self.assertEqual(messages.getvalue(), "")
            return
        try:
            from docutils.core import publish_string
        except ImportError:
            raise SkipTest("neither readme_renderer nor docutils is installed (pip install '.[docs]')") from None
        publish_string(text, writer_name="html", settings_overrides={"halt_level": 2, "report_level": 2})

    def test_layoutTableIsTrue(self) -> None:
        """Every path in the README's layout table exists."""
        text = (ROOT / "README.rst").read_text()
        layout = text[text.index("Layout\n------"):]
        paths = re.findall(r"^``([^`]+)``\s{2,}", layout, re.M)
        self.assertGreater(len(paths), 20)
        for path in paths:
            where = ROOT / "ctrader_twisted" / path if path.startswith("cli/") else ROOT / path
            self.assertTrue(where.exists(), path)


class SkipMessageTests(SynchronousTestCase):
    def test_missingReferenceFilesSayWhatToDo(self) -> None:
        """The skip names what is missing and how to provide it, and no path
        of this machine."""
        missing = Path(self.mktemp()).resolve()
        self.patch(os, "environ", dict(os.environ, CTRADER_TWISTED_SHARED=str(missing)))
        with self.assertRaises(SkipTest) as caught:
            referenceDir("recorded")
        reason = str(caught.exception)
        self.assertNotIn(str(missing), reason)
        self.assertNotIn(str(ROOT), reason)
        self.assertIn("CTRADER_TWISTED_SHARED", reason)
        self.assertIn("recorded from a real cTrader server", reason)
