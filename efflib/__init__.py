"""efflib: the small library the Efficient Deep Learning labs stand on."""

from efflib import shapes
from efflib.shapes import (
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
    receptive_field,
    receptive_fields,
)

__all__ = [
    "shapes",
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
    "receptive_field",
    "receptive_fields",
]
__version__ = "0.1.0"
