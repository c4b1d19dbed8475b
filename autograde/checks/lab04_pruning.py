"""Checks for Lab 04, pruning.

Masks are checked by their properties (exact nonzero count, largest magnitudes
kept, the stated tie rule) and against torch.nn.utils.prune where no tie or
rounding difference can occur; channel surgery by equality with the dense layers
on the kept channels; sizes and scans against efflib's references. Answers may
not call efflib's pruning functions.
"""

import copy
import math

import torch
import torch.nn as nn
import torch.nn.utils.prune as tprune

from autograde.checks.api import (
    TORCH_REFERENCES,
    Withheld,
    as_float,
    as_plain_tensor,
    call,
    call_in_place,
    check,
    expect_close,
    expect_int,
    expect_raises,
    expect_test_accuracy,
    fail,
    fmt_call,
    is_layer_tree,
    rng,
    torch_gen,
    watch,
)
from autograde.checks.models import OutputScore
from efflib import models, prune
from efflib.size import tensor_bits

TOPICS = ("magnitude_mask", "sensitivity_scan", "prune_channels", "model_size", "prune_model")
WITHHELD = Withheld(topics=TOPICS)  # the clean room (judging.clean_room) has none of these
# torch's pruning utilities compute the masks this lab asks for; NumPy's histograms Q7's counts
TORCH_PRUNING = ("torch.nn.utils.prune",)
HISTOGRAMS = ("histogram", "histogram2d", "histogramdd", "histogram_bin_edges",
              "binned_statistic")
HELD_OUT_DIGITS = True  # the grader judges pruned_model on new handwriting of its own
# the goal on new handwriting (bench/heldout_calibration.py: the solution's model, trained
# as the grader trains it, over 5 seeds and 3 secrets); the grader asks a point less
HANDWRITING = 0.93


def refusing(forbidden=(), numpy=()):
    """The watch of a Lab 04 answer: efflib's pruning references, torch's pruning utilities
    and reference ops, and the `forbidden` torch and `numpy` functions, refused."""
    return watch(forbidden=forbidden, topics=TOPICS, numpy=numpy,
                 modules=TORCH_PRUNING + TORCH_REFERENCES, call_only=TORCH_REFERENCES)


def _mask(fn, case, w, s) -> torch.Tensor:
    with refusing():
        got = call(fn, case, w.clone(), s)
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(w.shape):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        fail(f"{case}: expected a mask of shape {tuple(w.shape)}, got {shape}")
    plain = as_plain_tensor(got, case)
    if plain.dtype != torch.bool:
        fail(f"{case}: the mask should be a bool tensor, got {plain.dtype}")
    return plain


# --- Q1. Magnitude mask -------------------------------------------------------------

@check
def check_magnitude_mask(fn, hidden: bool = False) -> None:
    """Exactly round((1-s)·n) kept, the largest |w|, ties to the lower index, bad s refused."""
    r = rng(hidden, "mask")
    cases = [((4, 4), 0.5), ((10,), 0.25), ((3, 2, 3, 3), 0.9), ((7,), 0.5), ((5,), 0.0),
             ((5,), 1.0)]
    cases += [(tuple(r.randint(1, 9) for _ in range(r.randint(1, 4))), round(r.random(), 3))
              for _ in range(15 if hidden else 3)]
    for shape, s in cases:
        g = torch_gen(r)
        w = torch.randn(shape, generator=g)
        case = fmt_call("magnitude_mask", w, s)
        mask = _mask(fn, case, w, s)
        k = round((1 - s) * w.numel())
        expect_int(int(mask.sum()), k, f"{case}: weights kept",
                   hint="Keep exactly round((1 - sparsity) * n) weights.")
        if k and mask.any() and (~mask).any():
            if float(w.abs()[mask].min()) < float(w.abs()[~mask].max()):
                fail(f"{case}: a pruned weight is larger in magnitude than a kept one.")
        if k == w.numel() - round(s * w.numel()):  # torch's rounding agrees: same mask
            layer = nn.Linear(1, 1)
            layer.weight = nn.Parameter(w.clone())
            tprune.l1_unstructured(layer, "weight", amount=s)
            if not torch.equal(mask, layer.weight_mask.bool()):
                fail(f"{case}: differs from torch.nn.utils.prune.l1_unstructured's mask.")
    ties = torch.tensor([0.5, -3.0, 0.5, 2.0, -0.5, 0.1, 0.5])
    case = "magnitude_mask(tensor([0.5, -3.0, 0.5, 2.0, -0.5, 0.1, 0.5]), 0.5)"
    mask = _mask(fn, case, ties, 0.5)  # keep round(3.5) = 4: -3, 2, and the first two 0.5s
    if mask.tolist() != [True, True, True, True, False, False, False]:
        fail(f"{case}: expected [T, T, T, T, F, F, F] (equal magnitudes: the lower index is "
             f"kept), got {['T' if m else 'F' for m in mask.tolist()]}")
    for bad in (-0.1, 1.5):
        with refusing():
            expect_raises(fn, ValueError, fmt_call("magnitude_mask", ties, bad), ties, bad)


# --- Q2. Masks through fine-tuning --------------------------------------------------

@check
def check_prune_model(prune_fn, apply_fn, hidden: bool = False) -> None:
    """prune_model masks the chosen layers exactly; apply_masks keeps them after Adam steps."""
    r = rng(hidden, "prune_model")
    for trial in range(3 if hidden else 1):
        torch.manual_seed(r.randrange(2**31))
        model = models.digit_cnn(width=4 + 4 * trial)
        layers = prune.prunable_layers(model)
        chosen = {name: round(r.uniform(0.2, 0.95), 2)
                  for name in r.sample(sorted(layers), r.randint(1, len(layers)))}
        case = f"prune_model(digit_cnn, {chosen})"
        before = {n: m.weight.detach().clone() for n, m in layers.items()}
        # made before pruning, as a training script makes it: it must still train the model
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        with refusing():
            masks = call_in_place(prune_fn, case, model, dict(chosen))
        if not isinstance(masks, dict) or set(masks) != set(chosen):
            fail(f"{case}: should return a dict of masks keyed by {sorted(chosen)}")
        for name, s in chosen.items():
            w = layers[name].weight.detach()
            k = round((1 - s) * w.numel())
            expect_int(int((w != 0).sum()), k, f"{case}: nonzero weights in {name}")
            kept = before[name].abs()[w != 0]
            dropped = before[name].abs()[w == 0]
            if kept.numel() and dropped.numel() and float(kept.min()) < float(dropped.max()):
                fail(f"{case}: {name} lost a weight larger than one it kept.")
        for name in set(layers) - set(chosen):
            if not torch.equal(layers[name].weight.detach(), before[name]):
                fail(f"{case}: layer {name} was not chosen but its weights changed.")
        zeros = {n: (layers[n].weight == 0).clone() for n in chosen}
        pruned = {n: layers[n].weight.detach().clone() for n in chosen}
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
        for _ in range(3):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with refusing():
                call_in_place(apply_fn, "apply_masks(model, masks)", model, masks)
        for name, z in zeros.items():
            weight = layers[name].weight.detach()
            if bool((weight[z] != 0).any()):
                fail(f"after Adam steps and apply_masks, pruned weights of {name} are nonzero "
                     "again: multiply each weight by its mask in place (under no_grad).")
            if bool((weight[~z] == 0).any()):
                fail(f"after Adam steps and apply_masks, weights of {name} that were kept are "
                     "zero: apply_masks must zero only the pruned weights (those whose mask "
                     "is False).")
            if torch.equal(weight[~z], pruned[name][~z]):
                fail(f"after Adam steps and apply_masks, the weights of {name} that were kept "
                     "have not changed: apply_masks must zero only the pruned weights and "
                     "leave what the optimizer did to the others.")


# --- Q3. Sensitivity scan -----------------------------------------------------------


@check
def check_sensitivity_scan(fn, hidden: bool = False) -> None:
    """Same scores as efflib's scan (one layer pruned at a time), model restored afterwards."""
    r = rng(hidden, "sensitivity")
    torch.manual_seed(r.randrange(2**31))
    model = models.digit_cnn(width=4).eval()
    score = OutputScore(torch.randn(8, 1, 8, 8, generator=torch_gen(r)))

    # not in increasing order: pruning cumulatively instead of from the original weights
    # gives the same scores only when each sparsity is higher than the last
    sparsities = [0.5, 0.9, 0.0] if not hidden else \
        [0.9, 0.3] + [round(r.random(), 2) for _ in range(3)]
    layers = sorted(prune.prunable_layers(model))
    want = prune.sensitivity_scan(model, score, sparsities, layers, progress=False)
    saved = copy.deepcopy(model.state_dict())
    case = f"sensitivity_scan(model, score, {sparsities}, {layers})"
    with refusing():
        got = call_in_place(fn, case, model, score, list(sparsities), list(layers))
    if not isinstance(got, dict) or set(got) != set(layers):
        fail(f"{case}: should return a dict keyed by the layer names {layers}")
    for name in layers:
        values = [as_float(v, f"{case}[{name!r}]") for v in got[name]]
        if len(values) != len(sparsities) or any(
                not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
                for a, b in zip(values, want[name], strict=True)):
            fail(f"{case}[{name!r}]: got {[round(v, 6) for v in values]}, which differs from "
                 "a scan that prunes only this layer, from its original weights, for each "
                 "sparsity (restore the weights before the next one).")
    for k, v in model.state_dict().items():
        if not torch.equal(v, saved[k]):
            fail(f"{case}: the model is not restored afterwards ({k} changed).")


# --- Q4. The pruned, fine-tuned model -----------------------------------------------

@check
def check_pruned_model(model, target: float = 0.75) -> None:
    """At least `target` of the conv/linear weights are zero, and test accuracy >= 95%.

    The model travels as data and is rebuilt in the grader: what is counted and tested is
    exactly the layers it has, nothing hidden beside them."""
    if not isinstance(model, nn.Module) or not is_layer_tree(model):
        kind = type(model).__name__
        fail(f"pruned_model should be the pruned DigitCNN (or an nn.Sequential of torch.nn "
             f"layers), got {kind}")
    layers = prune.prunable_layers(model)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    total = sum(m.weight.numel() for m in layers.values())
    if not total or zeros / total < target:
        fail(f"pruned_model: {zeros / max(total, 1):.1%} of its conv and linear weights are "
             f"zero; the goal is at least {target:.0%}.")
    expect_test_accuracy(model, "pruned_model", 0.95, "Prune the sensitive layers less, or "
                         "fine-tune longer with the masks re-applied.",
                         handwriting=HANDWRITING)


# --- Q5. Channel surgery ------------------------------------------------------------

@check
def check_prune_channels(fn, hidden: bool = False) -> None:
    """Kept channels are the largest-norm filters in order; the layers equal the dense ones."""
    r = rng(hidden, "channels")
    cases = [(3, 8, 5, False), (4, 6, 3, True)] + [
        (r.randint(1, 6), r.randint(2, 12), 0, r.random() < 0.5) for _ in range(6 if hidden else 1)]
    for c_in, c_mid, keep, linear in cases:
        keep = keep or r.randint(1, c_mid)
        g = torch_gen(r)
        conv, bn = nn.Conv2d(c_in, c_mid, 3, padding=1), nn.BatchNorm2d(c_mid)
        nxt = nn.Linear(c_mid * 16, 5) if linear else nn.Conv2d(c_mid, 7, 3, padding=1)
        with torch.no_grad():
            for p in [*conv.parameters(), *nxt.parameters()]:
                p.copy_(torch.randn(p.shape, generator=g))
            bn.running_mean.copy_(torch.randn(c_mid, generator=g))
            bn.running_var.copy_(torch.rand(c_mid, generator=g) + 0.5)
            bn.weight.copy_(torch.rand(c_mid, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(c_mid, generator=g))
        conv, bn, nxt = conv.eval(), bn.eval(), nxt.eval()
        case = (f"prune_channels(Conv2d({c_in}, {c_mid}), BatchNorm2d({c_mid}), "
                f"{type(nxt).__name__}, keep={keep})")
        originals = copy.deepcopy((conv, bn, nxt))
        with refusing():
            out = call(fn, case, conv, bn, nxt, keep)
        if not isinstance(out, tuple) or len(out) != 3:
            fail(f"{case}: should return (conv, bn, next_layer)")
        c2, b2, n2 = out
        for got, want in zip(originals, (conv, bn, nxt), strict=True):
            if any(not torch.equal(a, b) for a, b in zip(got.state_dict().values(),
                                                        want.state_dict().values(), strict=True)):
                fail(f"{case}: the original layers were modified; build new ones.")
        idx = torch.sort(torch.topk(conv.weight.flatten(1).norm(dim=1), keep).indices).values
        x = torch.randn(2, c_in, 4, 4, generator=g)
        try:
            with torch.no_grad():
                dense = torch.relu(bn(conv(x)))
                small = torch.relu(b2.eval()(c2.eval()(x)))
        except Exception as e:  # noqa: BLE001 - report with the case
            fail(f"{case}: running the pruned conv and BN raised {type(e).__name__}: {e}")
        expect_close(small, dense[:, idx], f"{case}: pruned conv+BN output",
                     hint="Keep the `keep` filters with the largest L2 norms, in their "
                          "original order, with their BN statistics and affine parameters.")
        dropped = dense.clone()
        dropped[:, [i for i in range(c_mid) if i not in idx.tolist()]] = 0
        flat = (lambda t: t.flatten(1)) if linear else (lambda t: t)
        try:
            with torch.no_grad():
                got = n2.eval()(flat(small))
        except Exception as e:  # noqa: BLE001
            fail(f"{case}: the new next layer raised {type(e).__name__}: {e}")
        with torch.no_grad():
            want = nxt(flat(dropped))
        expect_close(got, want, f"{case}: next layer output", atol=1e-4,
                     hint="The next layer keeps only the input channels that survived "
                          "(for a Linear after flatten: each channel's block of H*W inputs).")


# --- Q6. Honest sizes ---------------------------------------------------------------

@check
def check_sparse_bytes(fn, hidden: bool = False) -> None:
    """sparse_bytes(weight, bits, fmt, index_bits) equals efflib's storage accounting."""
    r = rng(hidden, "sparse_bytes")
    # 3 of 10 nonzero at 4 bits: 12 value bits and a 10-bit mask share their last byte
    w = torch.tensor([[0.0, 1.5, 0.0, 0.0, -2.0], [0.0, 0.0, 0.0, 0.25, 0.0]])
    cases = [(w, 4, fmt, 8) for fmt in ("dense", "bitmask", "csr")]
    for _ in range(12 if hidden else 4):
        shape = tuple(r.randint(1, 12) for _ in range(r.choice([1, 2, 4])))
        w = torch.randn(shape, generator=torch_gen(r))
        w[torch.rand(shape, generator=torch_gen(r)) < r.random()] = 0
        cases += [(w, r.choice([4, 8, 16, 32]), fmt, r.choice([8, 16, 32]))
                  for fmt in ("dense", "bitmask", "csr")]
    for w, bits, fmt, index_bits in cases:
        case = fmt_call("sparse_bytes", w, bits, fmt, index_bits=index_bits)
        want = math.ceil(tensor_bits(w, bits, fmt, index_bits) / 8)
        with refusing():
            got = call(fn, case, w.clone(), bits, fmt, index_bits=index_bits)
        expect_int(got, want, case,
                   hint="bitmask: one bit per element plus the nonzero values, all in one "
                        "count of bits; CSR: a value and a column index per nonzero plus "
                        "rows + 1 pointers.")


# --- Q7. Weight histograms ------------------------------------------------------------

@check
def check_histogram(fn, hidden: bool = False) -> None:
    """histogram(values, bins, lo, hi) equals torch.histc, without calling it."""
    r = rng(hidden, "histogram")
    cases = [(torch.tensor([0.0, 0.1, 0.5, 0.99, 1.0, 1.5, -0.2]), 4, 0.0, 1.0)]
    for _ in range(10 if hidden else 3):
        g = torch_gen(r)
        lo = round(r.uniform(-3, 0), 3)
        hi = lo + round(r.uniform(0.5, 4), 3)
        cases.append((torch.randn(r.randint(1, 400), generator=g) * 2, r.randint(1, 60), lo, hi))
    for values, bins, lo, hi in cases:
        case = fmt_call("histogram", values, bins, lo, hi)
        with refusing(forbidden=("histc", "histogram", "histogramdd"), numpy=HISTOGRAMS):
            got = call(fn, case, values.clone(), bins, lo, hi)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (bins,):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            fail(f"{case}: expected {bins} counts, got {shape}")
        want = torch.histc(values.double(), bins, lo, hi).long()
        counts = as_plain_tensor(got, case).to(torch.int64)
        if not torch.equal(counts, want):
            i = int((counts != want).nonzero()[0])
            fail(f"{case}: bin {i} holds {int(counts[i])} values, which is too "
                 f"{'many' if counts[i] > want[i] else 'few'}. Values equal to hi go in the "
                 "last bin; values outside [lo, hi] are not counted.")
