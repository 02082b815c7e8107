# -*- test-case-name: tests.test_simulator -*-
"""A local cTrader Open API server for offline development, tests and benchmarks.

What moto is to boto: a server that speaks the Open API over TLS TCP and
``wss://`` with real semantics (authentication, reference data, market data,
trading, errors, rate limits, heartbeats, idle timeout), deterministic from a
seed, with fault injection and a burst mode. See ``docs/simulator.rst``.

Typical use in a trial test::

    from ctrader_twisted import Client
    from ctrader_twisted.simulator import Simulator

    sim = Simulator(seed=1)
    listening = sim.listen(reactor)
    self.addCleanup(sim.stop)
    client = Client("localhost", listening.tlsPort, trustRoot=listening.caCertificate, reactor=reactor)

Importing this package does not import the global reactor.

Where things live (modules documented in the API reference are linked):

* :mod:`~ctrader_twisted.simulator.server`: :class:`Simulator`
  (configuration, sessions, server events);
* :mod:`~ctrader_twisted.simulator.listening`: ports and certificates
  (:class:`Listening`), with :mod:`~ctrader_twisted.simulator.certs`
  minting them;
* :mod:`~ctrader_twisted.simulator.protocol`: the TCP and WebSocket server
  protocols;
* :mod:`~ctrader_twisted.simulator.session`: one connection's
  :class:`Session` (rate limits, heartbeats, idle timeout, dispatch);
* :mod:`~ctrader_twisted.simulator.handlers`: the request handlers
  (``auth``, ``refdata``, ``marketdata``, ``trading``) and their registry;
* ``execution``: fills, money and execution events;
* ``ticker``: the market clock; ``market``: prices and history;
  :mod:`~ctrader_twisted.simulator.accounts` and
  :mod:`~ctrader_twisted.simulator.data`: the records and reference data;
  ``accounthistory``: each account's past (deals, orders, cash flow);
* :mod:`~ctrader_twisted.simulator.oauth`: the OAuth consent page and token
  endpoint;
* :mod:`~ctrader_twisted.simulator.faults`: fault injection
  (:class:`Faults`); ``burst``: bulk output for benchmarks;
* ``tap`` and ``__main__``: ``twistd ctrader-simulator`` and
  ``python -m ctrader_twisted.simulator``.
"""

from .certs import CertificateSet, loadOrMintCertificates, mintCertificates
from .faults import Faults
from .listening import Listening
from .server import Simulator
from .session import Session

__all__ = [
    "Simulator",
    "Listening",
    "Faults",
    "Session",
    "CertificateSet",
    "mintCertificates",
    "loadOrMintCertificates",
]
