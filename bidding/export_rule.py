"""The programme's export rule (``export_counts``), for settlement and for the offer alike.

Peak shaving measures an owner's response at its metering point. When the programme does not
count export (``export_counts = false``, both shipped programmes, an ASSUMPTION there), energy
a battery pushes past its host site's own load into the grid earns nothing. The owner is
metered as one connection (``site_import``: its metering point's import, kW, + import, -
export, :func:`bidding.meter_frame.site_import_by_owner`: a site meter's reading for each
device that reads one, a hybrid inverter's or C&I storage EMS's grid meter with the host
site's load, each other device's own power); export is what it shows below zero. Where it is
not known, the conservative floor applies: the owner's metered load (the sum of its devices)
is credited no lower than zero.

* **Settlement** (:func:`credited_meter`): the credited metered load per owner and interval is
  ``meter - min(site_import, 0)`` where the site was metered, else ``max(meter, 0)``; as metered
  when export counts or for valley filling.
* **Offer** (:func:`deliverable_cap_kw`): the same rule seen ahead: an owner's reduction in an
  interval is credited at most up to its site's import at baseline (what the site draws without
  dispatch), where site readings exist; else at most its own (device) baseline. No cap when
  export counts or for valley filling, nor for an owner none of whose devices can go below
  zero (:func:`can_export`: its meter never does, so the rule never bites).

Units: kW (or Wh, any consistent unit) per owner and interval; NaN site import = not metered.
Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bidding.rules import Direction


def can_export(min_setpoints_kw: Iterable[float]) -> bool:
    """Whether an owner whose devices have these lowest setpoints (kW) can push power into
    the grid (a battery's or V2G charger's discharge): only then can the export rule cap it."""
    return any(kw < 0 for kw in min_setpoints_kw)


def credited_meter(meter: np.ndarray, sign: float, export_counts: bool,
                   site_import: np.ndarray | None = None) -> np.ndarray:
    """The metered load a response is measured against (module docstring). ``meter`` and
    ``site_import`` are (owners, intervals) in the same unit; ``sign`` > 0 is peak shaving.
    ``site_import`` None or NaN: the owner's site is not metered there (the floor at zero)."""
    meter = np.asarray(meter)
    if export_counts or sign < 0:
        return meter
    floor = np.maximum(meter, 0)
    if site_import is None:
        return floor
    site = np.broadcast_to(np.asarray(site_import, dtype=float), meter.shape)
    metered = np.isfinite(site)
    export = np.minimum(np.where(metered, site, 0.0), 0.0)
    out = np.where(metered, meter - export, floor)
    return out.astype(meter.dtype) if np.issubdtype(meter.dtype, np.integer) else out


def deliverable_cap_kw(export_counts: bool, direction: str, device_baseline_kw: np.ndarray,
                       site_baseline_kw: np.ndarray | None = None) -> np.ndarray:
    """Per interval, the most reduction an owner can be credited for (kW; module docstring):
    its site's import at baseline where ``site_baseline_kw`` is finite, else its device
    baseline (never below 0); +inf where nothing caps it (export counts, valley filling)."""
    base = np.asarray(device_baseline_kw, dtype=float)
    if export_counts or direction != Direction.PEAK_SHAVING.value:
        return np.full(base.shape, np.inf)
    cap = base
    if site_baseline_kw is not None:
        site = np.broadcast_to(np.asarray(site_baseline_kw, dtype=float), base.shape)
        cap = np.where(np.isfinite(site), site, base)
    return np.maximum(cap, 0.0)


def battery_discharge_cap_kw(export_counts: bool, battery_baseline_kw: np.ndarray,
                             site_baseline_kw: np.ndarray | None = None) -> np.ndarray:
    """Per battery and interval, the most it may discharge outside calls without exporting past
    its site meter (kW; :mod:`vpp.scheduler.tou`): the same rule as :func:`deliverable_cap_kw`,
    its power kept at or above its baseline minus the credited cap, i.e. the host site's load
    where the site is metered, else nothing below zero; +inf when export counts."""
    base = np.asarray(battery_baseline_kw, dtype=float)
    cap = deliverable_cap_kw(export_counts, Direction.PEAK_SHAVING.value, base, site_baseline_kw)
    return np.maximum(cap - base, 0.0)
