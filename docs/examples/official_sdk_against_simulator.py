"""Spotware's official SDK (``ctrader-open-api``) against the simulator.

Run it with the official SDK's own interpreter (it pins Twisted 24.3 and
protobuf 3.20, so give it a virtual environment of its own)::

    python -m venv sdk-env && sdk-env/bin/pip install ctrader-open-api
    python -m ctrader_twisted.simulator            # in another terminal
    sdk-env/bin/python official_sdk_against_simulator.py [credentials.json]

The official SDK verifies no certificate, so it connects to the simulator's
self-signed one as is. The script authenticates the application and the
first account, lists the symbols, subscribes to EURUSD spots, prints five
spot events and stops. Credentials and the port come from the simulator's
``credentials.json`` (``~/.ctrader-twisted/simulator/credentials.json`` by
default).
"""

import json
import os
import sys

from ctrader_open_api import Client, Protobuf, TcpProtocol
from ctrader_open_api.messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq,
    ProtoOAApplicationAuthReq,
    ProtoOASpotEvent,
    ProtoOASubscribeSpotsReq,
    ProtoOASymbolsListReq,
)
from twisted.internet import reactor

path = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.ctrader-twisted/simulator/credentials.json")
with open(path) as f:
    credentials = json.load(f)
accountId = credentials["accounts"][0]["ctidTraderAccountId"]
client = Client("localhost", credentials["tlsPort"], TcpProtocol)
spots = []


def check(message):
    payload = Protobuf.extract(message)
    if message.payloadType in (50, 2142):  # ProtoErrorRes, ProtoOAErrorRes
        raise RuntimeError(f"{payload.errorCode}: {payload.description}")
    return payload


def onMessage(client, message):
    if message.payloadType == ProtoOASpotEvent().payloadType:
        spot = Protobuf.extract(message)
        spots.append(spot)
        print(f"spot {spot.symbolId}: bid={spot.bid} ask={spot.ask} at {spot.timestamp}")
        if len(spots) == 5:
            client.stopService()
            reactor.stop()


def onConnected(client):
    d = client.send(ProtoOAApplicationAuthReq(clientId=credentials["clientId"], clientSecret=credentials["clientSecret"]))
    d.addCallback(check)
    d.addCallback(lambda _: client.send(ProtoOAAccountAuthReq(ctidTraderAccountId=accountId, accessToken=credentials["accessToken"])))
    d.addCallback(check)
    d.addCallback(lambda _: client.send(ProtoOASymbolsListReq(ctidTraderAccountId=accountId)))
    d.addCallback(check)
    d.addCallback(lambda res: print("symbols:", ", ".join(s.symbolName for s in res.symbol)))
    d.addCallback(lambda _: client.send(ProtoOASubscribeSpotsReq(ctidTraderAccountId=accountId, symbolId=[1])))
    d.addCallback(check)
    d.addErrback(lambda failure: (print("failed:", failure.getErrorMessage()), reactor.stop()))


client.setConnectedCallback(onConnected)
client.setDisconnectedCallback(lambda client, reason: None)
client.setMessageReceivedCallback(onMessage)
client.startService()
reactor.run()
