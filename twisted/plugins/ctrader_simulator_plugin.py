from twisted.application.service import ServiceMaker

ctraderSimulator = ServiceMaker(
    "ctrader-twisted simulator",
    "ctrader_twisted.simulator.tap",
    "A local cTrader Open API server (TLS TCP and wss://) for offline development and tests",
    "ctrader-simulator",
)
