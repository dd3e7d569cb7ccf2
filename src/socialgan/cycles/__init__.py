"""Cycles: the whole loop (choose, scrape, filter, train, generate, caption, publish) as one
durable server-side job with a history, and the schedule that starts them."""

from socialgan.cycles.run import STAGES, CycleRun, source_for
from socialgan.cycles.runner import CYCLE, CycleRunner, check_cycle_options

__all__ = ["CYCLE", "STAGES", "CycleRun", "CycleRunner", "check_cycle_options", "source_for"]
