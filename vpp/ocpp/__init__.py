"""The daemon's OCPP central system (CSMS) for EV chargers, OCPP 1.6J and 2.0.1 over WebSocket:
:mod:`.central` (the server, handshake authentication, fleet attachment), :mod:`.station` (what
both versions share per connection), :mod:`.v16` and :mod:`.v201` (the message handlers, on the
``ocpp`` library). The connectors are devices through :mod:`device_adapters.ocpp`."""
