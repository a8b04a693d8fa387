"""The service's routes: :mod:`~affectstream.service.api.http` (REST, metrics, the message
schema) and :mod:`~affectstream.service.api.ws` (a session's messages over a WebSocket), both
reaching the :class:`~affectstream.service.state.ServiceState` through the dependencies of
:mod:`~affectstream.service.api.deps` (token check, session lookup)."""
