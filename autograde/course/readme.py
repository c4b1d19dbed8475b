"""The README's generated blocks: the lab table and the measured figures.

Blocks sit between `<!-- generated: NAME -->` and `<!-- end generated -->` and are
rewritten from the lab sources (`autograde.course.inventory`) and from what `make bench`
recorded in bench/results/*.json, so a new lab or a new measurement never needs
a hand edit. `python -m autograde readme --check` fails when a block is stale.
"""

import json
import re
from pathlib import Path
from statistics import mean

from autograde.course import build, inventory

README = build.ROOT / "README.md"
RESULTS = build.ROOT / "bench" / "results"
_BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n).*?(<!-- end generated -->)", re.S)


def _bench(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _conditions(result: dict) -> str:
    m, load = result["machine"], result["load"]
    return (f"measured {result['date']} on {m['cpus']} CPUs ({m['processor']}), torch "
            f"{m['torch']}, load average {load['before']:g} before and {load['after']:g} after")


def labs_block() -> str:
    times = (_bench("lab_times") or {}).get("figures", {})
    rows = ["| lab | topic | questions | points (auto + by hand) | judged in the grader "
            "| solution run time (quiet / busy) |", "|---|---|---|---|---|---|"]
    totals = [0, 0, 0]
    for lab in build.lab_names():
        f = inventory.facts(lab)
        number = lab[3:5]
        questions = " · ".join(f"{q.qid} {q.title}" for q in f.questions)
        t = times.get(lab, {})
        run = (f"{t['solution_s']:g} s / {t['busy_s']:g} s" if "busy_s" in t else
               "not measured")
        rows.append(f"| [{number}](labs/{lab}/{lab}.ipynb) | {f.title} | {questions} "
                    f"| {f.auto_points} + {f.manual_points} | {f.judged_points} of "
                    f"{f.auto_points} | {run} |")
        totals = [totals[0] + f.auto_points, totals[1] + f.manual_points,
                  totals[2] + f.judged_points]
    rows.append(f"| all | | | {totals[0]} + {totals[1]} | {totals[2]} of {totals[0]} | |")
    return "\n".join(rows) + "\n"


def measured_block() -> str:
    lines = []
    if lab_times := _bench("lab_times"):
        runs = ", ".join(f"{lab[:5].replace('lab', 'Lab ')} {v['solution_s']:g} s quiet, "
                         f"{v.get('busy_s', float('nan')):g} s beside "
                         f"{v.get('busy_processes', 0)} busy processes"
                         for lab, v in lab_times["figures"].items())
        goals = lab_times.get("goals", {})
        goal = (f"at most {goals['quiet_s']:g} s quiet and {goals['busy_s']:g} s busy"
                if goals else "not recorded")
        lines.append(f"- Full solutions in a fresh kernel, kernel start included (goals: "
                     f"{goal}): {runs}; {_conditions(lab_times)}.")
    if overhead := _bench("profiler_overhead"):
        ratios = "; ".join(f"{name} " + ", ".join(
            f"{v:g}x at {t} thread{'s' if t != '1' else ''}" for t, v in by_threads.items())
            for name, by_threads in overhead["figures"].items())
        missed = [t for t, v in overhead["figures"].get("mobilenet_v2", {}).items() if v > 1.5]
        mobile = (f"missed at {' and '.join(missed)} thread{'s' if missed != ['1'] else ''}"
                  if missed else "met")
        lines.append(f"- `efflib.profile` against one plain forward pass, median of "
                     f"interleaved pairs (goals: at most 1.5x for ResNet-50, required, and "
                     f"for MobileNetV2, {mobile}): {ratios}; "
                     f"{_conditions(overhead)}.")
    if grading := _bench("grade_speed"):
        g = grading["figures"]
        lines.append(f"- Grading {g['students']} x {g['lab']}: serial `nbgrader autograde` "
                     f"{g['serial_s']:g} s, `python -m autograde grade` with {g['workers']} "
                     f"workers {g['parallel_s']:g} s ({g['speedup']:g}x; goal 1.8x); "
                     f"{_conditions(grading)}.")
    if cluster := _bench("grade_cluster"):
        c, none = cluster["figures"], " (none measurable)"
        lines.append(f"- Grading {c['students']} x {c['lab']} on Dask distributed (a LocalCluster "
                     f"on this machine, `--nthreads 1` workers): 1 worker {c['dask1_s']:g} s "
                     f"({c['per_minute']['1']:g} students/min), 2 workers {c['dask2_s']:g} s "
                     f"({c['per_minute']['2']:g} students/min); the local pool of 2 workers "
                     f"{c['local_s']:g} s, so Dask adds {c['overhead_s_per_student']:+g} s "
                     f"per student{none if c['overhead_s_per_student'] <= 0 else ''}; "
                     f"{_conditions(cluster)}.")
    if quant := _bench("quant_int8"):
        q = quant["figures"]
        lines.append(
            f"- Lab 05's digit CNN, fp32 against int8 on torch's {q.get('engine', 'x86')} "
            "quantized kernels (one "
            f"thread, medians of 15 interleaved runs): {q['fp32_bytes']:,d} B against "
            f"{q['int8_bytes']:,d} B stored; test accuracy {q['fp32_accuracy']:.1%} against "
            f"{q['int8_accuracy']:.1%}; batch 1 {q['fp32_ms_batch1']:g} ms against "
            f"{q['int8_ms_batch1']:g} ms; batch 256 {q['fp32_ms_batch256']:g} ms against "
            f"{q['int8_ms_batch256']:g} ms; {_conditions(quant)}.")
    if conv := _bench("loops"):
        g, ips = conv["figures"]["gflops"], conv["figures"]["images_per_second"]
        torch_rate = g["torch"]
        rates = ", ".join(f"{name} {v:g} ({v / torch_rate:.0%})" for name, v in g.items()
                          if name != "torch")
        goals = ", ".join(f"{name} {v:.0%}" for name, v in conv["goals"].items())
        lines.append(
            f"- Lab 06's 64x56x56 3x3 convolution in GFLOP/s at one thread, against torch's "
            f"{torch_rate:g} (goals: {goals}): {rates}. The int8 digit "
            f"CNN as a standalone C program ({conv['figures']['binary_bytes']:,d}-byte binary): "
            + ", ".join(f"{name} {v:,d} images/s" for name, v in ips.items())
            + " (the C program reads its images from a file, process start included)"
            + _guard_clause(conv["figures"].get("guard")) + f"; {_conditions(conv)}.")
    if beyond := _bench("beyond_compression"):
        lines.append(_beyond_line(beyond))
    if price := _bench("latency_price"):
        lines.append(_price_line(price))
    if deployment := _bench("deployment"):
        lines.append(deployment_table(deployment))
    return "\n".join(lines or ["- Nothing measured yet: run `make bench`."]) + "\n"


def _guard_clause(guard: dict | None) -> str:
    """What the guard around a notebook's C calls costs (efflib.guarded), where measured."""
    if not guard:
        return ""
    return (f". A notebook's C call runs in a forked child (efflib.guarded), which costs "
            f"{guard['ms_per_call']:g} ms per call outside the C: the best C kernel timed with "
            f"it gives {guard['C (best) gflops with the guard']:g} GFLOP/s; the lab's timings "
            "leave it out")


def _beyond_line(result: dict) -> str:
    """Lab 07's figures: distillation, early exit, search and capstone."""
    b = result["figures"]
    hard, soft = b["distillation"]["hard labels"], b["distillation"]["distilled"]
    unlabelled = b["distillation"]["distilled, unlabelled"]
    exits = {t: (rate, acc, macs) for t, rate, acc, macs in b["early_exit"]}
    full, some = exits[1.01], exits[0.8]
    s, c = b["search"], b["capstone"]
    arch = ", ".join(f"{k} {v}" for k, v in s["best"].items())
    apart = ("every distilled run above every hard-label one" if min(soft) > max(hard) else
             "the two ranges overlap")
    return (f"- Lab 07's solution: a 2,410-parameter student from 100 labelled images reaches "
            f"{mean(hard):.1%} test accuracy on hard labels and {mean(soft):.1%} distilled "
            f"from a {b['teacher_accuracy']:.1%} teacher (three seeds each, {apart}: the "
            f"worst distilled {min(soft):.1%}, the best hard-label {max(hard):.1%}), and "
            f"{mean(unlabelled):.1%} distilled on all 1,347 training images with no label; the "
            f"early exit at threshold 0.8 lets {some[0]:.0%} of the test images stop early, "
            f"for {some[1]:.1%} accuracy at {some[2]:,d} MACs per image on average against "
            f"{full[1]:.1%} at {full[2]:,d} without exits; whole networks take "
            f"{b['table_ratio']:g}x the batch-1 latency the per-layer table predicts (median "
            f"of a sample); aging evolution "
            f"trained {s['candidates']} candidates within the limits and found "
            f"{arch} ({s['macs']:,d} MACs, {s['accuracy']:.1%} after 3 epochs); the "
            f"capstone model stores in {c['bytes']:,.0f} B (8-bit weights), reaches "
            f"{c['acc']:.1%} and runs in {c['ms']:.3f} ms at batch 1, with "
            f"{c['macs']:,.0f} MACs; {_conditions(result)}.")


def _price_line(result: dict) -> str:
    """The capstone's latency price list against timings (bench/latency_price.py)."""
    f, goals = result["figures"], result["goals"]
    checked = f["check"]
    return (f"- Lab 07's capstone latency is priced, not timed: the grader's price list "
            f"predicts the fastest batch-1 call of {f['models']} models (one thread) within "
            f"{checked['rms_error']:.1%} rms, {checked['max_error']:.1%} at worst (goals "
            f"{goals['rms_error']:.0%} and {goals['max_error']:.0%}); it prices the solution's "
            f"capstone at {f['solution_priced_times']:g} times the width-32 DigitCNN, which "
            f"timed in turns gave {f['solution_measured_times_quiet']:g} times quiet and "
            f"{f['solution_measured_times_busy']:g} beside {f['busy_processes']} busy "
            f"processes; {_conditions(result)}.")


def deployment_table(result: dict) -> str:
    """Lab 08's deployment options as a table (bench/deployment.py)."""
    f = result["figures"]
    extra = " (OpenVINO from the optional extra)" if "OpenVINO fp32" in f["deployment"] else ""
    rows = [f"- Lab 08's deployment table: the solution's digit CNN shipped "
            f"{len(f['deployment'])} ways{extra}, measured in one run at one thread; "
            f"{_conditions(result)}. "
            "Start-up is a fresh process to its first prediction; C's latency is a run over "
            "64 images less its start-up:", "",
            "  | | model on disk | runtime libraries | start-up | peak memory | batch 1 "
            "| batch 64 | accuracy |", "  |---|---|---|---|---|---|---|---|"]
    for name, r in f["deployment"].items():
        rows.append(f"  | {name} | {r['disk_bytes'] / 1e3:,.1f} kB | "
                    f"{r['runtime_bytes'] / 1e6:,.2f} MB | {r['startup_s'] * 1e3:,.0f} ms | "
                    f"{r['peak_mb']:,.0f} MB | {r['latency_ms_1'] * 1e3:,.0f} µs | "
                    f"{r['latency_ms_64']:,.2f} ms | {r['accuracy']:.1%} |")
    return "\n".join(rows)


BLOCKS = {"labs": labs_block, "measured": measured_block}


def render(text: str) -> str:
    """`text` with every generated block rewritten."""
    def fill(m: re.Match) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise ValueError(f"README has an unknown generated block {name!r}")
        return m.group(1) + BLOCKS[name]() + m.group(3)
    return _BLOCK.sub(fill, text)


def update(path: Path = README, check: bool = False) -> bool:
    """Rewrite the blocks of `path` (or, with `check`, only say whether they are stale)."""
    text = path.read_text()
    fresh = render(text)
    if not check and fresh != text:
        path.write_text(fresh)
    return fresh != text
