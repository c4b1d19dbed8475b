"""Run ONNX models in ONNX Runtime and measure them as efflib measures torch models.

ONNX (https://onnx.ai/onnx/intro/) is the exchange format; ONNX Runtime
(https://onnxruntime.ai/docs/performance/model-optimizations/graph-optimizations.html)
rewrites the graph at a chosen optimisation level before it runs it. A model
travels here as the bytes of its .onnx file, which is what a device receives.
"""

import contextlib
import io
import logging
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from efflib import cc

LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
          "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
OPSET = 17
LIBRARY_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what the exporter and the quantizer print (progress lines, warnings, logs)."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _level(level: str) -> ort.GraphOptimizationLevel:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}, got {level!r}")
    return LEVELS[level]


def _as_bytes(model) -> bytes:
    if isinstance(model, onnx.ModelProto):
        return model.SerializeToString()
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    raise TypeError(f"expected an ONNX model's bytes (or an onnx.ModelProto), got "
                    f"{type(model).__name__}")


def session(model, level: str = "all", threads: int = 1,
            saved_to: Path | None = None) -> ort.InferenceSession:
    """An ONNX Runtime CPU session for `model` (bytes or ModelProto) at optimisation `level`
    ("disable", "basic", "extended", "all"), on `threads` threads; with `saved_to`, the
    graph as the engine rewrote it is written there."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _level(level)
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.log_severity_level = 3  # errors only: ALL warns that its graph is hardware-specific
    if saved_to is not None:
        options.optimized_model_filepath = str(saved_to)
    data = _as_bytes(model)
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own types; say what failed
        raise ValueError(f"ONNX Runtime cannot load this model: {e}") from None


def optimised(model, level: str) -> bytes:
    """The model's graph as ONNX Runtime rewrites it at `level`, as ONNX bytes."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "optimised.onnx"
        session(model, level, saved_to=path)
        return path.read_bytes()


def op_counts(model) -> Counter:
    """How many nodes of each type the graph has (its top level)."""
    return Counter(n.op_type for n in onnx.load_from_string(_as_bytes(model)).graph.node)


def run(sess: ort.InferenceSession, *inputs: torch.Tensor) -> torch.Tensor:
    """The session's first output for torch inputs, as a torch tensor."""
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(inputs):
        raise ValueError(f"the model takes {len(names)} inputs ({names}), got {len(inputs)}")
    feed = {n: x.detach().cpu().numpy() for n, x in zip(names, inputs, strict=True)}
    return torch.from_numpy(np.ascontiguousarray(sess.run(None, feed)[0]))


class Engine(nn.Module):
    """An ONNX Runtime session as a module, so efflib's latency and accuracy tools take it."""

    def __init__(self, model, level: str = "all", threads: int = 1):
        super().__init__()
        self.sess = session(model, level, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (N, outputs)
        return run(self.sess, x)


def library_bytes(package: str) -> int:
    """Bytes of the shared libraries an installed Python package carries (its native
    runtime: what a device would have to hold besides the model)."""
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not an installed package")
    total = 0
    for top in spec.submodule_search_locations:
        for path in Path(top).rglob("*"):
            if path.is_file() and any(s in path.name for s in LIBRARY_SUFFIXES):
                total += path.stat().st_size
    return total


@dataclass
class ColdStart:
    """A fresh process's time to its first prediction, its peak memory and what it printed."""

    seconds: float
    peak_bytes: int
    stdout: str


# A process forked from the notebook's kernel starts with the kernel's peak memory as its
# own (Linux copies the high-water mark with the address space), so cold starts are
# launched by this small C program: its children's marks start from its own few hundred kB.
LAUNCHER = r"""
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]); return 2; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) { execv(argv[1], argv + 1); perror(argv[1]); _exit(127); }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) { perror("wait4"); return 2; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "\nefflab-cold-start %d %.9f %ld\n",
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), seconds,
            usage.ru_maxrss);
    return 0;
}
"""


def cold_start(argv: Sequence[str], timeout: float = 120) -> ColdStart:
    """Run `argv` in a new process (start-up, load, one prediction) and measure it: wall
    time from fork to exit and the process's own peak resident memory (ru_maxrss)."""
    launcher = cc.build(LAUNCHER, kind="exe", name="cold_start")
    argv = [str(a) for a in argv]
    if not Path(argv[0]).is_absolute():
        raise ValueError(f"give the program as an absolute path, got {argv[0]!r}")
    done = subprocess.run([str(launcher), *argv], capture_output=True, timeout=timeout)
    tail = done.stderr.decode(errors="replace").rstrip().splitlines()
    if done.returncode != 0 or not tail or not tail[-1].startswith("efflab-cold-start "):
        raise RuntimeError(f"the launcher failed: {' '.join(tail[-2:])[:300]}")
    code, seconds, peak_kb = tail[-1].split()[1:]
    if int(code) != 0:
        said = [ln for ln in tail[:-1] if ln.strip()][-1:] or ["(nothing on stderr)"]
        raise RuntimeError(f"{argv[0]} exited with {code}: {said[0][:300]}")
    return ColdStart(float(seconds), int(peak_kb) * 1024,
                     done.stdout.decode(errors="replace"))


def python_argv(code: str) -> list[str]:
    """A command line that runs `code` in a new Python process of this environment."""
    return [sys.executable, "-c", code]


# --- one quantized convolution, as ONNX Runtime would be handed it -----------------------

def qdq_conv(q_w: torch.Tensor, w_scale: torch.Tensor, q_b: torch.Tensor, x_scale: float,
             x_zero: int, y_scale: float, y_zero: int, padding: int = 0,
             relu: bool = False) -> bytes:
    """A QDQ graph of one int8 convolution: uint8 x -> DequantizeLinear -> Conv (int8 weights
    per output channel, int32 bias at scale x_scale w_scale) [-> Relu] -> QuantizeLinear
    -> uint8 y. ONNX Runtime fuses it into one integer kernel where it can."""
    q_w = q_w.to(torch.int8).numpy()                                   # (Cout, Cin, kh, kw)
    w_scale = w_scale.to(torch.float32).reshape(-1).numpy()            # (Cout,)
    cout = q_w.shape[0]
    b_scale = (np.float32(x_scale) * w_scale).astype(np.float32)
    inits = [numpy_helper.from_array(q_w, "w_q"), numpy_helper.from_array(w_scale, "w_s"),
             numpy_helper.from_array(np.zeros(cout, np.int8), "w_z"),
             numpy_helper.from_array(q_b.to(torch.int32).reshape(-1).numpy(), "b_q"),
             numpy_helper.from_array(b_scale, "b_s"),
             numpy_helper.from_array(np.zeros(cout, np.int32), "b_z"),
             numpy_helper.from_array(np.array(x_scale, np.float32), "x_s"),
             numpy_helper.from_array(np.array(x_zero, np.uint8), "x_z"),
             numpy_helper.from_array(np.array(y_scale, np.float32), "y_s"),
             numpy_helper.from_array(np.array(y_zero, np.uint8), "y_z")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "x_s", "x_z"], ["x_f"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w_f"], axis=0),
             helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b_f"], axis=0),
             helper.make_node("Conv", ["x_f", "w_f", "b_f"], ["y_f"], pads=[padding] * 4)]
    last = "y_f"
    if relu:
        nodes.append(helper.make_node("Relu", ["y_f"], ["y_r"]))
        last = "y_r"
    nodes.append(helper.make_node("QuantizeLinear", [last, "y_s", "y_z"], ["y"]))
    x_info = helper.make_tensor_value_info("x", TensorProto.UINT8,
                                           ["N", q_w.shape[1], "H", "W"])
    y_info = helper.make_tensor_value_info("y", TensorProto.UINT8, ["N", cout, "Ho", "Wo"])
    graph = helper.make_graph(nodes, "qdq_conv", [x_info], [y_info], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()
