"""Simulation scenarios: the validated scenario file, its city load and weather, and its fleet."""

from sim.scenarios.scenario import Scenario, load_scenario

__all__ = ["Scenario", "load_scenario"]
