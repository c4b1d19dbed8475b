"""efflib: the small library the Efficient Deep Learning labs stand on."""

from efflib import models, roofline, shapes
from efflib.latency import measure_in_turns, measure_latency, measure_throughput
from efflib.profiler import Profile, profile
from efflib.roofline import measure_machine, roofline_points
from efflib.shapes import (
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
    receptive_field,
    receptive_fields,
)
from efflib.size import model_size

__all__ = [
    "models",
    "shapes",
    "roofline",
    "Profile",
    "profile",
    "measure_in_turns",
    "measure_latency",
    "measure_throughput",
    "measure_machine",
    "roofline_points",
    "model_size",
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
    "receptive_field",
    "receptive_fields",
]
__version__ = "0.1.0"
