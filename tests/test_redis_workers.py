"""Two ``twistd ctrader --redis --group`` workers share six simulator
accounts; one is killed with SIGKILL: the other streams its accounts within
the lease time, and every deal made meanwhile reaches the exec streams."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from ctrader_twisted import Client, TcpProtocol
from ctrader_twisted.redis import RedisLink
from ctrader_twisted.redis.leases import leaseKey
from ctrader_twisted.simulator import Simulator

from .redisutil import readStream, run, sleep, startServer
from .util import ROOT

LEASE = 2.0


class WorkersTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.logs: list[str] = []

    def alive(self, workers: list[subprocess.Popen[bytes]]) -> None:
        for process, path in zip(workers, self.logs):
            if process.poll() is not None:
                with open(path, errors="replace") as f:
                    self.fail(f"worker exited with {process.returncode}: {f.read()[-3000:]}")

    def worker(self, name: str, simulator: Simulator, port: int, caFile: str, url: str) -> subprocess.Popen[bytes]:
        path = os.path.abspath(self.mktemp() + f"-{name}.log")
        self.logs.append(path)
        log = open(path, "wb")
        self.addCleanup(log.close)
        env = dict(os.environ, PYTHONPATH=str(ROOT), CTRADER_CLIENT_ID=simulator.clientId,
                   CTRADER_CLIENT_SECRET=simulator.clientSecret, CTRADER_ACCESS_TOKEN=simulator.accessToken)
        process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             "ctrader", "--host", "localhost", "--port", str(port), "--ca-file", caFile, "--symbols", "EURUSD",
             "--redis", url, "--group", "g", "--lease", str(LEASE)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
        )

        def end() -> None:
            if process.poll() is None:
                process.kill()
            process.wait(10)

        self.addCleanup(end)
        return process

    def test_killOneWorker(self) -> Any:
        async def go() -> None:
            server = startServer(self)
            simulator = Simulator(clock=reactor, spotInterval=0.1, requestsPerSecond=None)
            for _ in range(4):
                simulator.addAccount()
            accounts = simulator.accountIds
            self.assertEqual(len(accounts), 6)
            listening = simulator.listen(reactor, tlsPort=0, wsPort=None)
            self.addCleanup(simulator.stop)
            caFile = os.path.abspath(self.mktemp())
            with open(caFile, "wb") as f:
                f.write(listening.caPEM)
            link = RedisLink(server.url, reactor)
            link.start()
            self.addCleanup(link.stop)
            await link.whenConnected()

            workers = [self.worker(n, simulator, listening.tlsPort, caFile, server.url) for n in ("a", "b")]
            holders: dict[int, str | None] = {}

            async def readHolders() -> None:
                for account in accounts:
                    holders[account] = await link.execute("GET", leaseKey(account, "g"))

            async def allHeld() -> bool:
                await readHolders()
                return all(holders.values()) and len(set(holders.values())) == 2

            deadline = time.monotonic() + 40
            while not await allHeld():
                self.alive(workers)
                self.assertLess(time.monotonic(), deadline, f"leases never shared: {holders}")
                await sleep(0.2)

            # A trader places orders on every account all along and records its deals.
            trader = Client("localhost", listening.tlsPort, TcpProtocol, reactor=reactor, trustRoot=listening.caPEM,
                            clientId=simulator.clientId, clientSecret=simulator.clientSecret)
            deals: set[tuple[int, int]] = set()

            def execution(event: Any) -> None:
                if event.HasField("deal"):
                    deals.add((int(event.ctidTraderAccountId), int(event.deal.dealId)))

            trader.addListener("ProtoOAExecutionEvent", execution)
            trader.startService()
            self.addCleanup(trader.stopService)
            await trader.whenReady()
            for account in accounts:
                await trader.authorizeAccount(account, simulator.accessToken)

            async def trade(rounds: int) -> None:
                for _ in range(rounds):
                    for account in accounts:
                        trader.request("ProtoOANewOrderReq", ctidTraderAccountId=account, symbolId=1, orderType=1,
                                       tradeSide=1, volume=100000).addErrback(lambda f: None)
                    await sleep(0.1)

            await trade(5)
            victimPid = workers[0].pid
            victim = [a for a, h in holders.items() if h and f":{victimPid}:" in h]
            survivor = [h for h in holders.values() if h and f":{victimPid}:" not in h][0]
            self.assertTrue(victim)
            os.kill(victimPid, signal.SIGKILL)
            killed = time.monotonic()
            trading = run(trade(20))  # deals go on during the handover
            while True:
                await readHolders()
                if all(holders[a] == survivor for a in victim):
                    break
                self.assertLess(time.monotonic() - killed, 3 * LEASE + 5, f"no takeover: {holders}")
                await sleep(0.05)
            takeover = time.monotonic() - killed
            # Streaming from the survivor: new spots in each taken-over account's stream.
            before = {a: len(await readStream(link, f"ctrader:{{{a}}}:spot")) for a in victim}

            async def streaming() -> bool:
                for a in victim:
                    if len(await readStream(link, f"ctrader:{{{a}}}:spot")) <= before[a]:
                        return False
                return True

            deadline = time.monotonic() + 10
            while not await streaming():
                self.assertLess(time.monotonic(), deadline, "taken-over accounts do not stream")
                await sleep(0.1)
            streamingAfter = time.monotonic() - killed
            # The workers asked the server's version: a standalone simulator's data is marked.
            spots = [line for _, _, line in await readStream(link, f"ctrader:{{{victim[0]}}}:spot")]
            self.assertTrue(spots and all('"simulated":true' in line for line in spots), spots[:3])
            await trading
            self.assertGreater(len(deals), 0)
            # Every deal reaches its account's exec stream (the live event or the takeover's backfill).
            async def allDeals() -> set[tuple[int, int]]:
                found: set[tuple[int, int]] = set()
                for a in accounts:
                    for _, key, _ in await readStream(link, f"ctrader:{{{a}}}:exec"):
                        parts = key.split(":")
                        if parts[1:3] == ["exec", "deal"]:
                            found.add((a, int(parts[3].split("#")[0])))
                return found

            deadline = time.monotonic() + 10
            while True:
                missing = deals - await allDeals()
                if not missing:
                    break
                self.assertLess(time.monotonic(), deadline, f"deals missing from the exec streams: {sorted(missing)}")
                await sleep(0.2)
            backfilled = [line for a in victim for _, _, line in await readStream(link, f"ctrader:{{{a}}}:exec")
                          if '"backfilled":true' in line]
            self.assertTrue(backfilled, "no deal of the handover window was backfilled")
            # Within the lease time; the slack is for this shared 2-core machine's scheduling.
            self.assertLessEqual(streamingAfter, LEASE + 0.5, f"streaming again after {streamingAfter:.2f} s")
            print(f"\n  lease {LEASE} s: {len(victim)} accounts taken over after {takeover:.2f} s, streaming after "
                  f"{streamingAfter:.2f} s; {len(deals)} deals, none missing", file=sys.stderr)
            workers[1].send_signal(signal.SIGTERM)

        return run(go())


class EndpointTests(TestCase):
    timeout = 60

    def test_connectionPerEndpoint(self) -> Any:
        """Demo accounts go through the demo endpoint's connection, live ones through the live one's."""

        async def go() -> None:
            from ctrader_twisted.cli.config import Credentials, Settings
            from ctrader_twisted.redis.workers import SharedAccountsService
            from ctrader_twisted.simulator.certs import mintCertificates

            server = startServer(self)
            certificates = mintCertificates()
            demo, live = Simulator(clock=reactor, spotInterval=0.05), Simulator(clock=reactor, spotInterval=0.05)
            ports = []
            for simulator in (demo, live):
                ports.append(simulator.listen(reactor, tlsPort=0, wsPort=None, certificate=certificates).tlsPort)
                self.addCleanup(simulator.stop)
            caFile = os.path.abspath(self.mktemp())
            with open(caFile, "wb") as f:
                f.write(certificates.caPEM)
            settings = Settings("localhost", ports[0], caFile=caFile,
                                credentials=Credentials(demo.clientId, demo.clientSecret, demo.accessToken))
            status = io.StringIO()
            worker = SharedAccountsService(settings, ["EURUSD"], server.url, "g", status, reactor, lease=3.0,
                                           endpoints={False: ("localhost", ports[0]), True: ("localhost", ports[1])})
            worker.startService()
            self.addCleanup(worker.stopService)
            link = RedisLink(server.url, reactor)
            link.start()
            self.addCleanup(link.stop)
            await link.whenConnected()
            accountIds = demo.accountIds  # 2000001 demo, 2000002 live (the same in both simulators)

            async def streaming() -> bool:
                for account in accountIds:
                    if not await readStream(link, f"ctrader:{{{account}}}:spot"):
                        return False
                return True

            deadline = time.monotonic() + 20
            while not await streaming():
                self.assertLess(time.monotonic(), deadline, status.getvalue())
                await sleep(0.1)
            authorized = [sorted(a for s in sim.sessions for a in s.accounts) for sim in (demo, live)]
            self.assertEqual(authorized, [[accountIds[0]], [accountIds[1]]])
            self.assertEqual(len(worker.connections), 2)
            self.assertIn(f"through localhost:{ports[1]}", status.getvalue())

        return run(go())
