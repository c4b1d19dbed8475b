"""What the texts of Labs 05-08 say they measured, each tested on the solution's own run.

Issue 29: every sentence that states a measured result must hold in the lab's own output,
quiet and beside busy processes. A claim pairs the words, as they stand in the lab's text,
with a function of the solution's namespace after a full run (a student's run, not the
grader's short one) that returns whether they hold and the figures behind them. `verdicts`
runs inside the solution's kernel, after its last cell (tests/test_lab_claims.py).
"""

import math
import re
from collections import Counter
from collections.abc import Callable

Verdict = tuple[bool, str]  # (the words hold, the figures behind them)


def _leaves(model) -> int:
    """Layer calls one forward pass makes: modules with no children."""
    return sum(1 for m in model.modules() if not list(m.children()))


# -- Lab 05 -----------------------------------------------------------------------------

def _int8_quarter(ns) -> Verdict:
    share = ns["int8_bytes"] / ns["fp32_bytes"]
    return 0.25 < share < 0.3, f"int8 / fp32 bytes = {share:.3f}"


def _int8_near_fp32_at_256(ns) -> Verdict:
    fp32, int8 = (ns["results"][k][1][256].median for k in ("fp32", "int8 (torch.ao)"))
    engine = ns["torch_int8"].engine()
    return engine != "qnnpack" or max(fp32, int8) / min(fp32, int8) < 2, (
        f"{engine}, batch 256: int8 {int8 * 1e3:.2f} ms, fp32 {fp32 * 1e3:.2f} ms")


def _saved_bits(ns, name: str) -> float:
    curves = ns["curves"]
    return math.log(curves[name, False][-1] / curves[name, True][-1], 4)


def _modest_spread(ns) -> Verdict:
    w = ns["w_conv"]
    ranges = w.abs().reshape(w.shape[0], -1).amax(dim=1)
    spread, saved = float(ranges.max() / ranges.min()), _saved_bits(ns, "as trained")
    at_10x = _saved_bits(ns, "10x")
    return spread < 3 and saved < at_10x / 2, (
        f"spread {spread:.2f}x, saves {saved:.2f} bits (at 10x: {at_10x:.2f})")


def _saving_grows_less_than_lost_channels(ns) -> Verdict:
    saving = _saved_bits(ns, "1000x") / _saved_bits(ns, "100x")
    lost = (ns["zeroed_share"](ns["weights"]["1000x"], 4)
            / ns["zeroed_share"](ns["weights"]["100x"], 4))
    return saving < lost, (
        f"100x -> 1000x: saving x{saving:.2f}, channels lost at 4 bits x{lost:.2f}")


def _huffman_saves(ns, stream: str) -> float:
    counts = Counter(ns["streams"][stream])
    code = ns["huffman"].canonical_code(ns["huffman_code_lengths"](counts))
    return 1 - ns["huffman"].average_bits(counts, code) / 4


def _huffman_shortens_linear_more(ns) -> Verdict:
    kmeans, linear = _huffman_saves(ns, "k-means"), _huffman_saves(ns, "linear")
    return linear > 2 * kmeans, f"saved: k-means {kmeans:.1%}, linear {linear:.1%}"


def _ptq_collapses(ns) -> Verdict:
    accs = dict(ns["points"]["linear (per channel)"])  # bits -> accuracy
    errors = [1 - accs[b] for b in sorted(accs, reverse=True)]  # 8 bits first
    steps = [b - a for a, b in zip(errors, errors[1:], strict=False)]
    falls = min(steps) >= -0.01  # one point of noise
    collapses = errors[-1] >= 5 * (1 - ns["base_acc"]) and steps[-1] > sum(steps[:-1])
    return falls and collapses, (
        f"PTQ error by bits {sorted(accs, reverse=True)}: {[round(e, 3) for e in errors]}, "
        f"fp32 {1 - ns['base_acc']:.3f}")


# -- Lab 06 -----------------------------------------------------------------------------

def _python_takes_tens_of_seconds(ns) -> Verdict:
    seconds = ns["FLOP"] / (ns["speed"]["Python loops"] * 1e9)
    return 10 <= seconds < 300, f"the real layer in Python: {seconds:.0f} s"


def _python_a_hundredth(ns) -> Verdict:
    speed = ns["speed"]
    python, naive = speed["Python loops"], speed["C"]
    held = 0.001 <= python <= 0.015 and 50 <= naive / python <= 300 and \
        python == min(speed.values())
    return held, f"Python {python:.4f} GFLOP/s, naive C {naive:.2f} ({naive / python:.0f}x)"


def _numba_orders(ns) -> Verdict:
    best, worst = ns["best"], ns["worst"]
    return best.endswith("q") and not worst.endswith("q"), f"best {best}, worst {worst}"


def _speeds_of_the_fast(ns) -> tuple[float, float, float, str]:
    speed = ns["speed"]
    torch_ = max(v for k, v in speed.items() if k.startswith("torch"))
    tiled, im2col = speed["C, tiled"], speed["im2col + GEMM"]
    return torch_, tiled, im2col, (
        f"torch {torch_:.1f}, im2col {im2col:.1f}, tiled C {tiled:.1f} GFLOP/s")


def _torch_leads(ns) -> Verdict:
    """torch leads the loops the lab wrote (C, numba, Python): the model answer's sentence
    follows the tiled C loop's, and im2col, which hands its work to torch's own matrix
    product, is not among them (it came within 80% of torch quiet, and ahead of it once
    beside two busy processes)."""
    speed = ns["speed"]
    torch_ = max(v for k, v in speed.items() if k.startswith("torch"))
    loops_ = {k: v for k, v in speed.items() if not k.startswith(("torch", "im2col"))}
    best = max(loops_, key=loops_.get)
    return torch_ > loops_[best], f"torch {torch_:.1f}, the best loop {best} {loops_[best]:.1f}"


def _im2col_keeps_up_with_tiled(ns) -> Verdict:
    _, tiled, im2col, figures = _speeds_of_the_fast(ns)
    return im2col >= 0.8 * tiled, figures


def _megabytes_against_tens_of_kb(ns) -> Verdict:
    patch, row = ns["extra"]["im2col (patch matrix)"], ns["extra"]["C, tiled (row buffer)"]
    return patch >= 1e6 and 10e3 <= row < 100e3, (
        f"patch matrix {patch / 1e6:.1f} MB, row buffer {row / 1e3:.1f} kB")


def _tiled_twice_as_fast(ns) -> Verdict:
    ratio = ns["speed"]["C, tiled"] / ns["speed"]["C"]
    return ratio >= 2, f"tiled / naive C = {ratio:.1f}"


def _four_orders(ns) -> Verdict:
    values = [*ns["speed"].values(), ns["peak"]]
    decades = math.log10(max(values) / min(values))
    return 3.5 <= decades < 4.5, f"{decades:.2f} decades"


def _same_predictions(ns) -> Verdict:
    return bool(ns["same"]), f"same predictions: {ns['same']}"


def _row_buffer_tens_of_kb(ns) -> Verdict:
    kb = ns["extra"]["C, tiled (row buffer)"] / 1e3
    return 10 <= kb < 100, f"{kb:.1f} kB"


def _patch_matrix_nine_times(ns) -> Verdict:
    times = ns["extra"]["im2col (patch matrix)"] / ns["inputs_bytes"]
    return 8.5 < times <= 9, f"patch matrix {times:.2f}x the input"


# -- Lab 07 -----------------------------------------------------------------------------

def _teacher_parameters(ns) -> Verdict:
    n = sum(p.numel() for p in ns["teacher"].parameters())
    images = len(ns["loaders"].train.dataset)
    return n == 94_186 and images == 1_347, f"{n:,d} parameters, {images:,d} images"


def _student_forty_times_fewer(ns) -> Verdict:
    teacher, student = (sum(p.numel() for p in m.parameters())
                        for m in (ns["teacher"], ns["make_student"](0)))
    ratio = teacher / student
    return student == 2_410 and 35 < ratio < 45, f"{student:,d} parameters, {ratio:.1f}x fewer"


def _distillation_beats_hard_labels(ns) -> Verdict:
    runs = ns["runs"]
    hard, soft = (sum(runs[k]) / len(runs[k]) for k in ("hard labels", "distilled"))
    return soft > hard, f"mean of three seeds: hard labels {hard:.3f}, distilled {soft:.3f}"


def _search_space_size(ns) -> Verdict:
    configs, layers = len(ns["nas"].all_configs()), len(ns["table"])
    return configs == 54 and layers == 63, f"{configs} networks, {layers} distinct layers"


def _exit_skips_three_quarters(ns) -> Verdict:
    macs = 1 - ns["macs_exit"] / (ns["macs_exit"] + ns["macs_rest"])
    time = 1 - ns["lat_exit"].median / ns["lat_full"].median
    return 0.65 < macs < 0.85 and time < macs, (
        f"saves {macs:.0%} of the MACs, {time:.0%} of the time")


def _exit_pays_half_the_calls(ns) -> Verdict:
    share = _leaves(ns["exit_path"]) / _leaves(ns["branchy"])
    return 0.4 <= share <= 0.6, f"exit path makes {share:.0%} of the layer calls"


def _quantizing_costs_nothing(ns) -> Verdict:
    model, stored = ns["final_model"], ns["stored_bytes"]
    times = stored(model, 32) / stored(model, ns["final_bits"])
    drop = ns["fp32_acc"] - ns["report"]["final_model"]["acc"]
    return 2 < times < 3 and drop <= 0.005, f"{times:.1f}x smaller, accuracy {-drop:+.1%}"


def _capstone_fewer_macs_yet_slower(ns) -> Verdict:
    teacher, final = ns["report"]["teacher (fp32)"], ns["report"]["final_model"]
    fewer = teacher["macs"] / final["macs"]
    return 15 < fewer < 21 and final["ms"] > teacher["ms"], (
        f"{fewer:.1f}x fewer MACs, {final['ms']:.3f} ms against {teacher['ms']:.3f} ms")


# -- Lab 08 -----------------------------------------------------------------------------

def _graph_macs_agree(ns) -> Verdict:
    m = ns["measured"]
    return m["graph_macs"] == m["profile_macs"] > 0, (
        f"graph {m['graph_macs']:,d} MACs, profile {m['profile_macs']:,d}")


def _parameters_differ_by_the_export(ns) -> Verdict:
    m, cnn, nn = ns["measured"], ns["cnn"], ns["nn"]
    bn = sum(b.num_features for b in cnn.modules() if isinstance(b, nn.BatchNorm2d))
    shapes = m["graph_params"] - m["profile_params"] + bn
    return m["graph_params"] != m["profile_params"] and 0 < shapes <= 8, (
        f"graph {m['graph_params']:,d}, profile {m['profile_params']:,d}, BN channels {bn}, "
        f"shape numbers {shapes}")


def _counts(ns) -> dict:
    return {name: ns["engines"].op_counts(g) for name, g in ns["graphs"].items()}


def _basic_removes_batchnorms(ns) -> Verdict:
    c = _counts(ns)
    return c["exported"]["BatchNormalization"] == 3 and c["ORT basic"][
        "BatchNormalization"] == 0 == c["your fold"]["BatchNormalization"], (
        f"BatchNormalization: exported {c['exported']['BatchNormalization']}, basic "
        f"{c['ORT basic']['BatchNormalization']}, your fold {c['your fold']['BatchNormalization']}")


def _extended_fuses_conv_relu(ns) -> Verdict:
    c = _counts(ns)["ORT extended"]
    return c["FusedConv"] == 3 and c["Conv"] == c["Relu"] == 0, (
        f"extended: FusedConv {c['FusedConv']}, Conv {c['Conv']}, Relu {c['Relu']}")


def _all_reorders(ns) -> Verdict:
    c = _counts(ns)["ORT all"]
    return c["ReorderInput"] + c["ReorderOutput"] >= 1, (
        f"all: ReorderInput {c['ReorderInput']}, ReorderOutput {c['ReorderOutput']}")


def _mobile(ns, level: str) -> Counter:
    return ns["engines"].op_counts(ns["mobile_graphs"][f"ORT {level}"])


def _extended_fuses_relu6(ns) -> Verdict:
    c = _mobile(ns, "extended")
    return c["Clip"] == 0 and c["FusedConv"] == 6, (
        f"extended: Clip {c['Clip']}, FusedConv {c['FusedConv']}")


def _extended_leaves_hardswish_and_adds(ns) -> Verdict:
    c = _mobile(ns, "extended")
    return c["HardSigmoid"] == c["Mul"] == 1 and c["Add"] == 2, (
        f"extended: HardSigmoid {c['HardSigmoid']}, Mul {c['Mul']}, Add {c['Add']}")


def _all_takes_them_into_convolutions(ns) -> Verdict:
    c = _mobile(ns, "all")
    left = sum(c[k] for k in ("Clip", "HardSigmoid", "HardSwish", "Mul", "Add"))
    return left == 0 and c["Conv"] == 10, f"all: {dict(c)}"


def _int8_file_not_four_times_smaller(ns) -> Verdict:
    t = ns["measured"]["int8_table"]
    share = t["ORT MinMax"]["bytes"] / t["ORT fp32"]["bytes"]
    return 0.25 < share < 1, f"int8 / fp32 file = {share:.3f}"


def _tensors_shrink_graph_grows(ns) -> Verdict:
    fp32, int8 = ns["measured"]["fp32_file"], ns["measured"]["int8_file"]
    share = int8["tensors"] / fp32["tensors"]
    return 0.25 <= share < 0.3 and int8["nodes"] > fp32["nodes"], (
        f"tensors {int8['tensors']:,d} / {fp32['tensors']:,d} = {share:.3f}; nodes "
        f"{fp32['nodes']} -> {int8['nodes']}")


def _integers_differ_by_one_rarely(ns) -> Verdict:
    d = ns["measured"]["bit_diff"]
    return d["max"] <= 1 and d["differ"] <= d["of"] / 1000, (
        f"{d['differ']:,d} of {d['of']:,d} differ, by at most {d['max']}")


def _row(ns, name: str) -> dict:
    return ns["measured"]["deployment"][name]


def _ort_runtime_tens_of_mb(ns) -> Verdict:
    mb = _row(ns, "ORT fp32")["runtime_bytes"] / 1e6
    return 10 <= mb < 100, f"onnxruntime's libraries: {mb:.1f} MB"


def _ort_starts_faster_torch_hundreds_of_mb(ns) -> Verdict:
    start, torch_start = (_row(ns, k)["startup_s"] for k in ("ORT fp32", "torch fp32"))
    torch_mb = _row(ns, "torch fp32")["runtime_bytes"] / 1e6
    return torch_start / start >= 3 and 100 <= torch_mb < 1000, (
        f"start-up ORT {start:.2f} s, torch {torch_start:.2f} s; torch's libraries "
        f"{torch_mb:.0f} MB")


def _c_binary_tens_of_kb(ns) -> Verdict:
    kb = _row(ns, "C int8")["disk_bytes"] / 1e3
    return 10 <= kb < 100, f"C binary {kb:.1f} kB"


CLAIMS: dict[str, dict[str, Callable[[dict], Verdict]]] = {
    "lab05_quantization": {
        "In a small network trained from scratch for seconds that spread is modest, and so "
        "is the saving": _modest_spread,
        "Why does the saving in mean squared error grow less from 100x to 1000x than the "
        "share of lost channels does?": _saving_grows_less_than_lost_channels,
        "Which stream does Huffman coding shorten more? Think about how each method places "
        "its 16 values": _huffman_shortens_linear_more,
        "the fewer the bits, the more accuracy it costs, until at some width it collapses":
            _ptq_collapses,
        "the int8 model stores about a quarter of the fp32 bytes": _int8_quarter,
        "the two came out within a factor of two of each other at batch 256, either way "
        "round from run to run": _int8_near_fp32_at_256,
    },
    "lab06_loops": {
        "Pure Python would need tens of seconds for it (more on a busy machine)":
            _python_takes_tens_of_seconds,
        "Python loops run at a few thousandths to a hundredth of a GFLOP/s, about a hundred "
        "times below even the naive C loop and further below the rest": _python_a_hundredth,
        "The best numba orders keep the output column q innermost": _numba_orders,
        "torch still leads": _torch_leads,
        "keeps up with the tiled C loop even after copying the input into its patch matrix":
            _im2col_keeps_up_with_tiled,
        "the copy is nine times the input, megabytes where the tiled loop's row buffer needs "
        "tens of kB": _megabytes_against_tens_of_kb,
        "the fast one must be at least 2x faster": _tiled_twice_as_fast,
        "The axis is logarithmic: the range is four orders of magnitude": _four_orders,
        "with the same predictions as Lab 05's integer model on every image":
            _same_predictions,
        "(a few tens of kB for the real layer": _row_buffer_tens_of_kb,
        "each input value is copied into up to R·S columns": _patch_matrix_nine_times,
    },
    "lab07_beyond_compression": {
        "The teacher: efflib's digit CNN at width 32 (94,186 parameters), trained for a few "
        "seconds on all 1,347 training images": _teacher_parameters,
        "(64 -> 32 -> 10, 2,410 parameters, 40 times fewer than the teacher)":
            _student_forty_times_fewer,
        "the teacher's soft outputs on the same 100 images carry far more information per "
        "image": _distillation_beats_hard_labels,
        "54 networks in all": _search_space_size,
        "it skips about three quarters of the MACs but saves a smaller share of the time":
            _exit_skips_three_quarters,
        "because the exit path still pays for half of the layer calls": _exit_pays_half_the_calls,
        "it cut the searched network's stored bytes about 2.5x (not 4x: the batch norms, the "
        "biases and each channel's scale and zero point stay at 32 bits":
                _quantizing_costs_nothing,
        "it has about 18x fewer MACs than the teacher yet is slower at batch 1":
            _capstone_fewer_macs_yet_slower,
    },
    "lab08_porting": {
        "The MACs agree to the last one.": _graph_macs_agree,
        "The parameters do not, and the difference is the export":
            _parameters_differ_by_the_export,
        "`basic` removes the BatchNorms (your fold, done by the engine)":
            _basic_removes_batchnorms,
        "`extended` fuses each Conv with the ReLU after it into one `FusedConv` kernel":
            _extended_fuses_conv_relu,
        "(NCHWc, hence the `Reorder` nodes at its edges)": _all_reorders,
        "On the mobile network, `extended` fuses the ReLU6s (`Clip`)": _extended_fuses_relu6,
        "but leaves the hard-swish (split into `HardSigmoid` and `Mul`) and the residual "
        "`Add`s as nodes of their own": _extended_leaves_hardswish_and_adds,
        "`all` takes every one of them into its convolutions": _all_takes_them_into_convolutions,
        "The int8 file is smaller than the float one but not four times smaller":
            _int8_file_not_four_times_smaller,
        "Its tensors shrink about four times": _tensors_shrink_graph_grows,
        "the graph around them grows": _tensors_shrink_graph_grows,
        "Where the two differ, they differ by one, and rarely": _integers_differ_by_one_rarely,
        "its runtime is tens of megabytes": _ort_runtime_tens_of_mb,
        "it starts several times faster than PyTorch without PyTorch's hundreds of megabytes":
            _ort_starts_faster_torch_hundreds_of_mb,
        "its binary holds the weights and the code in tens of kilobytes": _c_binary_tens_of_kb,
    },
}


def words_of(text: str) -> str:
    """Markdown as one line of words: comment marks and line breaks gone."""
    return " ".join(re.sub(r"(?m)^#( |$)", "", text).split())


def verdicts(lab: str, ns: dict) -> dict[str, Verdict]:
    """Each claim of `lab` judged on a finished run's namespace (an error is a failure)."""
    out = {}
    for words, judge in CLAIMS[lab].items():
        try:
            held, figures = judge(ns)
            out[words] = (bool(held), figures)
        except Exception as e:  # noqa: BLE001 - a missing figure fails the claim, named
            out[words] = (False, f"{type(e).__name__}: {e}")
    return out

