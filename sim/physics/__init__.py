"""Pure device physics, usable in-process without Modbus.

Every model has ``step(dt_s, setpoint_kw)``: integrate the state over ``dt_s`` seconds at the
power the device chooses for ``setpoint_kw`` (``None`` = its own default behaviour, no
aggregator control), then expose ``power_kw`` (> 0 consumption), ``energy_kwh`` (a cumulative
counter), ``soc_pct`` and ``indoor_temp_c`` (``None`` where not applicable). ``step(0, sp)``
re-evaluates the power for a new setpoint without advancing time.
"""

from sim.physics.factory import make_physics

__all__ = ["make_physics"]
