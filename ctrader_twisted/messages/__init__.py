"""Generated protobuf modules for the cTrader Open API (release 91).

Module names match the official SDK's, so ``from
ctrader_open_api.messages.OpenApiMessages_pb2 import ...`` becomes ``from
ctrader_twisted.messages.OpenApiMessages_pb2 import ...``. Regenerate them
with ``python tools/regenerate_messages.py`` after editing ``proto/``.
"""

#: The release of the published Open API ``.proto`` files that ``proto/`` matches.
PROTO_RELEASE = "91"
