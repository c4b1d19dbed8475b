"""Judging: the kernel only answers, the grader decides.

A test cell run inside the student's kernel can be fooled by anything that kernel
runs. When grading, a test cell is therefore run in the grader's own process; the
student's kernel only answers requests for plain data over a Unix socket.

    values       plain values and the errors a verdict can carry
    threads      one thread per checked call: the notebook's own threads refused
    watch        the forbidden-op watch applied while student code runs
    layers       standard torch.nn layer trees described as data and rebuilt
    graphs       a student's own nn.Module as its torch.export graph, rebuilt
    traces       one call of a student's tensor function as the ATen operations it ran
    wire         plain data as JSON, length-prefixed frames
    judge        the grader side: which cells are judged, and judging one
    channel      the grader side of the socket: one judged cell's requests
    kernel_side  the kernel side of the socket: the request loop

Imports point down this list only (values is imported by all, imports none).
"""
