"""OCPP charge point connectors behind the one adapter protocol (:mod:`device_adapters.protocol`):
meter values in (:mod:`.meter`), charging profiles out (:mod:`.adapter`). The WebSocket central
system that carries them is :mod:`vpp.ocpp`."""
