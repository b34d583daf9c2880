"""Which device model plans which kind: the assembler's registry of blocks.

Devices are grouped by :func:`group_key` (kind and structural variant: devices of one group share
one block's sparsity pattern) and each group is built by its model's ``build``
(:mod:`vpp.scheduler.battery`, :mod:`~vpp.scheduler.ev`, :mod:`~vpp.scheduler.v2g`,
:mod:`~vpp.scheduler.pv`, :mod:`~vpp.scheduler.shed`). Adding a kind to the scheduler means adding it here.
"""

from __future__ import annotations

import numpy as np

from vpp.device_kinds import DeviceKind
from vpp.scheduler import battery, ev, pv, shed, v2g
from vpp.scheduler.block import Block
from vpp.scheduler.inputs import FleetDevice, Weights

#: blocks whose solution carries a state of charge (% of capacity), :func:`battery.soc_pct`
SOC_BLOCKS = frozenset({"battery", v2g.BLOCK_NAME})


def group_key(d: FleetDevice, n: int, dt_h: float) -> tuple:
    """The group (block) a device is planned in."""
    if d.kind is DeviceKind.BATTERY:
        return ("battery",)
    if d.kind is DeviceKind.V2G_CHARGER:
        return ("v2g",)
    if d.kind is DeviceKind.EV_CHARGER:
        return ("ev",) + ev.variant(d)
    if d.kind is DeviceKind.PV_INVERTER:
        return ("pv",)
    return ("shed",) + shed.variant(d, n, dt_h)


def build_block(key: tuple, members: np.ndarray, devs: list[FleetDevice], n: int, dt_h: float,
                w: Weights) -> Block:
    """The block of one group (``key`` from :func:`group_key`)."""
    if key[0] == "battery":
        return battery.build(members, devs, n, dt_h, w)
    if key[0] == "v2g":
        return v2g.build(members, devs, n, dt_h, w)
    if key[0] == "ev":
        return ev.build(members, devs, n, dt_h, w)
    if key[0] == "pv":
        return pv.build(members, devs, n, dt_h, w)
    return shed.build(members, devs, n, dt_h, w)
