"""nextbest.world: the synthetic customer world with a hidden ground truth.

:class:`World` generates customers, their organic activity and historical randomised
campaigns, writes them into the warehouse together with the truth (``ground_truth``
schema), and can be stepped day by day by a closed-loop simulator.
"""

from nextbest.world.activity import Activity
from nextbest.world.params import SEGMENTS, WorldParams
from nextbest.world.respond import Outcome
from nextbest.world.world import World

__all__ = ["SEGMENTS", "Activity", "Outcome", "World", "WorldParams"]
