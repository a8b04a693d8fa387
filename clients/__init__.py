"""Client kits for affectstream's WebSocket protocol (``affectstream.client``).

The Python client lives in this package (:mod:`affectstream.client.session`, re-exported here:
``from affectstream.client import SessionClient``); the JavaScript client (browser and Node, one ES
module) lives in ``js/affectstream.js`` and is served by the service at ``/client.js``.
"""

from affectstream.client.session import (
    NO_RETRY,
    Backoff,
    ClientError,
    ForbiddenError,
    GaveUpError,
    Message,
    MessageTooBigError,
    PolicyViolationError,
    ProtocolError,
    SessionClient,
    SessionClosedError,
    SessionDeletedError,
    UnauthorizedError,
    UnknownSessionError,
)

__all__ = [
    "NO_RETRY",
    "Backoff",
    "ClientError",
    "ForbiddenError",
    "GaveUpError",
    "Message",
    "MessageTooBigError",
    "PolicyViolationError",
    "ProtocolError",
    "SessionClient",
    "SessionClosedError",
    "SessionDeletedError",
    "UnauthorizedError",
    "UnknownSessionError",
]
