"""Quantization: fewer bits per weight and activation (Lab 05; used again in Labs 06-07).

    linear    scale and zero point, quantize / dequantize, fake quantization (STE)
    kmeans    weight sharing: a k-means codebook and indices per layer (Deep Compression)
    huffman   Huffman codes of index streams, with the size of what is stored
    binary    binary and ternary weights with per-channel scales
    integer   integer-only inference: int8 x int8 -> int32, fixed-point requantization
"""
