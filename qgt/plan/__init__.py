"""The planner package: layout, plan steps, the scheduling pass and plan summaries."""

from qgt.plan.planner import make_plan
from qgt.plan.steps import ExpectStep, GlobalSwap, MeasureStep, Plan, Sweep

__all__ = ["make_plan", "Plan", "Sweep", "GlobalSwap", "MeasureStep", "ExpectStep"]
