"""Client kits for affectstream's WebSocket protocol (``affectstream.client``).

The Python client lives in this package; the JavaScript client (browser and Node, one ES module)
lives in ``js/affectstream.js`` and is served by the service at ``/client.js``.
"""
