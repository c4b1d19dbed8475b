"""Write a bench script's figures to bench/results/NAME.json, with the load they were taken under.

The README's measured figures are generated from these files
(`python -m autograde readme`), so they never drift from what `make bench` printed.
"""

import datetime
import json
import os
import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def load() -> float:
    """The 1-minute load average (how many runnable processes shared the cores)."""
    return round(os.getloadavg()[0], 2)


def record(name: str, figures: dict, load_before: float, goals: dict | None = None) -> Path:
    """Save `figures` (and the `goals` they were held to) with the machine, the date and the
    load before and after."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({
        "figures": figures,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or
                    platform.machine(), "torch": torch.__version__},
        "date": datetime.date.today().isoformat(),
        "load": {"before": load_before, "after": load()},
        **({"goals": goals} if goals else {}),
    }, indent=1) + "\n")
    return path
