"""RoAd (rotation adaptation) through peft: each adapted layer's outputs are rotated in pairs by learned angles and
scaled; an orthogonal-style update placed with reparameterization (it merges), and one peft serves in mixed batches."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class RoadConfig:
    variant: str = "road_1"  # road_1 | road_2 | road_4: scales and angles shared by 1, 2 or 4 elements
    group_size: int = 64  # elements per rotation group; divides each adapted layer's out width
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "group_size")


apply = apply_peft_type("ROAD")
register("road", family="reparameterization", config=RoadConfig, merges=True, mixed_batches=True,
         summary="2-D rotations of pairs of output features with learned angles and scales")(apply)
