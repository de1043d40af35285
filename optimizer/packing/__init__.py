"""Multi-dimensional vector bin packing with bin types of different costs.

``solve(items, bins, time_limit=...) -> PackingPlan`` is deterministic and has no side
effects; fleet planning and what-if scenarios reuse it.
"""

from optimizer.packing.model import BinType, Item, PackedBin, PackingPlan, Problem, make_problem
from optimizer.packing.solver import (
    ColumnGeneration,
    ExactPatterns,
    GreedyPortfolio,
    KindGreedy,
    PackingStrategy,
    simple_lower_bound,
    solve,
)

__all__ = [
    "BinType",
    "ColumnGeneration",
    "ExactPatterns",
    "GreedyPortfolio",
    "Item",
    "KindGreedy",
    "PackedBin",
    "PackingPlan",
    "PackingStrategy",
    "Problem",
    "make_problem",
    "simple_lower_bound",
    "solve",
]
