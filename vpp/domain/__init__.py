"""The domain layer: the models that the daemon and the HTTP API both speak.

Layers, lowest first: :mod:`vpp.domain` (typed contracts: the event status
:class:`~vpp.domain.grid_calls.EventStatus`, grid calls, the intake's decision, event and bid
views, live points, probe progress); :mod:`vpp.models` (the tables, which use those statuses);
:mod:`vpp.daemon` (the
lifecycle: intake, planning, dispatch, settlement) above them; :mod:`vpp.api` (HTTP) on top,
which imports the daemon and these models and re-exports them in :mod:`vpp.api.schemas`. Nothing
here imports :mod:`vpp.daemon`, :mod:`vpp.api` or the database, and :mod:`vpp.daemon` never imports
:mod:`vpp.api` (``tests/test_layers.py`` walks the imports and fails otherwise).
"""
