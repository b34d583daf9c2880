"""``GET /api/v1/admission``: the VPP's admission check under its programme (operators).

The same computation as ``vpp admission`` (:func:`vpp.admission.admission_from_db`, the pure
:func:`bidding.admission.assess_admission`), run off the event loop; batteries' states of
charge are the fleet runtime's live readings where it has them, else the last stored ones.
"""

from __future__ import annotations

import functools

from vpp.admission import admission_from_db
from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.domain.admission import AdmissionQuery, AdmissionResult
from vpp.models import Role


async def admission(call: Call) -> AdmissionResult:
    """Adjustable capacity down and up, continuous response, share of normal load, and each
    rule's verdict and margin (:class:`~vpp.domain.admission.AdmissionResult`)."""
    q: AdmissionQuery = call.query
    parts = call.request.app[PARTS]
    soc = {int(did): float(st.last_state.soc_pct)
           for did, st in parts.fleet.poller.stats.items()
           if st.last_state is not None and st.last_state.soc_pct is not None}
    return await parts.db.call(functools.partial(
        admission_from_db, parts.db.engine, parts.settings, day=q.day, window=q.window,
        history_days=q.history_days, soc_pct=soc))


ROUTES = [
    Route("GET", "/api/v1/admission", admission,
          "The VPP's admission check: capacity up and down, continuous response, share of "
          "normal load, each rule's verdict and margin", "admission", roles(Role.OPERATOR),
          query=AdmissionQuery, response=AdmissionResult),
]
