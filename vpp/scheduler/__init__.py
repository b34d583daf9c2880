"""Dispatch scheduler: the fleet QP on OSQP, flexibility envelope, re-dispatch, partitioning.

Pure numpy in, numpy out (no forecasting or bidding import). Start at :class:`Scheduler` (cached
model per fleet structure) or :class:`DispatchModel`; see ``docs/scheduler.md``.
"""

from vpp.scheduler.envelope import Envelope, flexibility_envelope
from vpp.scheduler.inputs import EventCall, EvSession, FleetDevice, HorizonData, Weights
from vpp.scheduler.model import DispatchModel, SolverOptions
from vpp.scheduler.plan import Binding, SolvedPlan
from vpp.scheduler.redispatch import advance, redispatch
from vpp.scheduler.service import Scheduler

__all__ = [
    "Binding", "DispatchModel", "Envelope", "EvSession", "EventCall", "FleetDevice",
    "HorizonData", "Scheduler", "SolvedPlan", "SolverOptions", "Weights", "advance",
    "flexibility_envelope", "redispatch",
]
