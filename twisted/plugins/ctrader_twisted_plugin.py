"""twistd plugin: ``twistd -n ctrader --symbols EURUSD`` (see ctrader_twisted.cli.tap).

Nothing but the ServiceMaker: ctrader_twisted.cli.tap is imported only when the
plugin is used, so ``twistd --help`` stays fast.
"""

from twisted.application.service import ServiceMaker

ctraderStreamer = ServiceMaker(
    "ctrader-twisted",
    "ctrader_twisted.cli.tap",
    "Stream cTrader Open API prices and account events as JSON lines (bundled simulator without --host)",
    "ctrader",
)
