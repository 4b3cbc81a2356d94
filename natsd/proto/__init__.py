"""Sans-IO NATS client protocol: parser, CONNECT options, encoders, errors.

Nothing in this package performs I/O or reads clocks; see each module's
docstring for its theory of operation.
"""

from natsd.proto.connect import ConnectOptions, parse_connect, validate_connect
from natsd.proto.errors import ClosedReason, ProtocolError, go_quote
from natsd.proto.parser import (
    OP_CLIENT_ERR,
    OP_CONNECT,
    OP_ERROR,
    OP_HPUB,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_SUB,
    OP_UNSUB,
    Parser,
)

__all__ = [
    "OP_CLIENT_ERR",
    "OP_CONNECT",
    "OP_ERROR",
    "OP_HPUB",
    "OP_PING",
    "OP_PONG",
    "OP_PUB",
    "OP_SUB",
    "OP_UNSUB",
    "ClosedReason",
    "ConnectOptions",
    "Parser",
    "ProtocolError",
    "go_quote",
    "parse_connect",
    "validate_connect",
]
