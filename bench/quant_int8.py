"""The trained digit CNN at fp32 against int8 on PyTorch's quantized kernels (Lab 05), on the
engine that is exact on this CPU (efflib.quant.torch_int8.engine: x86 with VNNI, else qnnpack).

Size (efflib's size code), test accuracy, and latency at batch 1 and 256 on one
thread: fp32 and int8 timed in turn, 15 pairs each, medians reported, so drift
in this shared machine's speed hits both alike.

    python bench/quant_int8.py
"""

import statistics
import sys
import time
import warnings

import torch
from record import load, record  # noqa: E402 - bench/ is on sys.path when run as a script

import efflib
from efflib import data, models, train
from efflib.quant import integer, torch_int8

warnings.filterwarnings("ignore", message=".*deprecated.*")


def main() -> int:
    before = load()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    loaders = data.digits(seed=0)
    fp32 = models.digit_cnn(width=16)
    train.fit(fp32, loaders.train, loaders.test, epochs=6, progress=False)
    fp32.eval()
    int_model = integer.convert(fp32, torch.cat([x for x, _ in loaders.train]))
    int8 = torch_int8.to_torch(int_model)
    x_test = torch.cat([x for x, _ in loaders.test])
    y_test = torch.cat([y for _, y in loaders.test])
    figures = {"fp32_bytes": efflib.model_size(fp32, 32), "int8_bytes": int_model.stored_bytes(),
               "engine": torch_int8.engine()}
    for name, model in (("fp32", fp32), ("int8", int8)):
        with torch.no_grad():
            figures[f"{name}_accuracy"] = round(float((model(x_test).argmax(1) == y_test)
                                                      .float().mean()), 4)
    for batch in (1, 256):
        x = x_test[:batch].contiguous()
        times = {"fp32": [], "int8": []}
        with torch.no_grad():
            for _ in range(5):
                fp32(x), int8(x)
            for _ in range(15):
                for name, model in (("fp32", fp32), ("int8", int8)):
                    start = time.perf_counter()
                    model(x)
                    times[name].append(time.perf_counter() - start)
        for name, t in times.items():
            figures[f"{name}_ms_batch{batch}"] = round(statistics.median(t) * 1e3, 3)
        print(f"batch {batch:3d}: fp32 {figures[f'fp32_ms_batch{batch}']:.3f} ms, "
              f"int8 {figures[f'int8_ms_batch{batch}']:.3f} ms")
    print(f"size: fp32 {figures['fp32_bytes']:,d} B, int8 {figures['int8_bytes']:,d} B; "
          f"accuracy fp32 {figures['fp32_accuracy']:.1%}, int8 {figures['int8_accuracy']:.1%}")
    print(f"recorded in {record('quant_int8', figures, before)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
