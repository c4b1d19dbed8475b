# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 04: Pruning
#
# *Efficient Deep Learning for Edge Deployment*
#
# Trained networks are over-parameterised: many weights can be set to zero
# with little loss of accuracy (Han et al., [arXiv:1506.02626](https://arxiv.org/abs/1506.02626)).
# *Which* zeros matters. Removing individual weights (**fine-grained**, or
# unstructured, pruning) reaches high sparsity, but the zeros sit at irregular
# positions: dense kernels still multiply them, and storing the matrix sparsely
# costs an index per weight. Removing whole **channels** (neurons, filters)
# gives a genuinely smaller dense network that runs faster anywhere.
#
# In this lab you write a magnitude mask, prune a trained CNN layer by layer
# guided by a sensitivity scan, fine-tune it back to full accuracy with the
# masks held in place, perform channel surgery, and measure what each kind of
# pruning does to size, MACs and latency on this machine.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# Answers that call efflib's pruning functions are refused. Q7 is read by a person.

# %%
import copy

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

import efflib
from efflib import data, models, plots, prune, train
from efflib.latency import fast_mode, threads_for_load

torch.manual_seed(0)
FAST = fast_mode()  # True while the grader runs this notebook: shorter training and timing
# one thread under the grader (notebooks run side by side) or on a busy machine
torch.set_num_threads(1 if FAST else threads_for_load())
loaders = data.digits(seed=0)
print(f"torch {torch.__version__}, fast mode {FAST}")

# %% [markdown]
# The network we prune: efflib's digit CNN at width 32 (three 3x3 convs of 32,
# 64 and 128 channels with BatchNorm, global pooling, a linear classifier),
# trained for a few seconds.

# %%
torch.manual_seed(0)
dense = models.digit_cnn(width=32)
history = train.fit(dense, loaders.train, loaders.test, epochs=8, fast_epochs=5)
dense_acc = train.evaluate(dense, loaders.test)
print(f"dense: {sum(p.numel() for p in dense.parameters()):,d} parameters, "
      f"test accuracy {dense_acc:.1%}")
print("prunable layers:", list(prune.prunable_layers(dense)))

# %% [markdown]
# ## Q1. The magnitude mask (3 points)
#
# Fine-grained magnitude pruning keeps the weights of largest $|w|$. To make
# "sparsity $s$" exact, the mask keeps **exactly** $\text{round}((1-s) \cdot n)$
# of the $n$ weights (Python's `round`), and among weights of equal magnitude
# it keeps the one with the **lower flat index** first.
#
# Python's `round` sends a half to the even neighbour, so a half-integer count
# goes down or up: one weight at sparsity 0.5 keeps 0, three keep 2.
# `torch.nn.utils.prune` rounds the other count, the pruned one
# ($\text{round}(s \cdot n)$), and so keeps one weight more or fewer at such
# halves. This course rounds the kept count because every size and MAC figure
# in this lab is computed from the weights that are kept.
#
# Write `magnitude_mask(weight, sparsity)` returning a `bool` tensor of the
# weight's shape (`True` = kept). Raise `ValueError` if `sparsity` is outside
# $[0, 1]$. *Hint:* `torch.sort(..., stable=True)` keeps equal values in index order.

# %% nbgrader={"grade": false, "grade_id": "q1_magnitude_mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def magnitude_mask(weight, sparsity):
    """Bool mask keeping the round((1 - sparsity) * n) largest |w|, ties to the lower index."""
    ### BEGIN SOLUTION
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    k = round((1 - sparsity) * weight.numel())
    order = torch.sort(weight.detach().abs().flatten(), descending=True, stable=True).indices
    mask = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    mask[order[:k]] = True
    return mask.view(weight.shape)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_magnitude_mask_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q1: exact kept count, largest magnitudes, the tie rule, and torch's l1_unstructured."""
from autograde.checks.lab04_pruning import check_magnitude_mask

check_magnitude_mask(magnitude_mask)
### BEGIN HIDDEN TESTS
check_magnitude_mask(magnitude_mask, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q2. Keeping the zeros through fine-tuning (3 points)
#
# Pruning costs accuracy; a few epochs of fine-tuning win it back. But an
# optimizer step moves every weight that has a gradient, zeros included (Adam's
# momentum even moves weights whose gradient is zero). So the masks must be
# re-applied after every step.
#
# Write `prune_model(model, sparsities)`, which computes a mask for each named
# layer in `sparsities` (e.g. `{"features.3": 0.8}`) with your
# `magnitude_mask`, zeroes the pruned weights and returns `{name: mask}`, and
# `apply_masks(model, masks)`, which zeroes them again (in place, without
# recording gradients). `prune.prunable_layers(model)` maps names to layers.
# Both change the weights in place: an optimizer made before pruning holds the
# model's parameter objects, and a layer given a new `nn.Parameter` would no
# longer be trained by it. The check trains with such an optimizer and expects
# the pruned weights to stay zero and the kept ones to move.

# %% nbgrader={"grade": false, "grade_id": "q2_prune_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
def apply_masks(model, masks):
    """Zero every pruned weight again (in place)."""
    ### BEGIN SOLUTION
    layers = prune.prunable_layers(model)
    with torch.no_grad():
        for name, mask in masks.items():
            layers[name].weight.mul_(mask)
    ### END SOLUTION


def prune_model(model, sparsities):
    """Mask each named layer to its sparsity; return {name: mask}."""
    ### BEGIN SOLUTION
    layers = prune.prunable_layers(model)
    masks = {name: magnitude_mask(layers[name].weight, s) for name, s in sparsities.items()}
    apply_masks(model, masks)
    return masks
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q2_prune_model_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q2: prune_model masks exactly the chosen layers; apply_masks holds through Adam steps."""
from autograde.checks.lab04_pruning import check_prune_model

check_prune_model(prune_model, apply_masks)
### BEGIN HIDDEN TESTS
check_prune_model(prune_model, apply_masks, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q3. Sensitivity scan (2 points)
#
# Layers differ in how much pruning they tolerate. A sensitivity scan prunes
# **one layer at a time** (from its original weights) to each sparsity, scores
# the model, and puts the layer back. Write
# `sensitivity_scan(model, score, sparsities, layers)` returning
# `{layer: [score at each sparsity]}`, leaving the model exactly as it was.
# `score(model)` returns a number (here: test accuracy).

# %% nbgrader={"grade": false, "grade_id": "q3_sensitivity", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sensitivity_scan(model, score, sparsities, layers):
    """{layer: [score(model) with only that layer pruned to s] for s in sparsities}."""
    ### BEGIN SOLUTION
    modules = prune.prunable_layers(model)
    result = {}
    for name in layers:
        weight = modules[name].weight
        saved = weight.detach().clone()
        scores = []
        for s in sparsities:
            with torch.no_grad():
                weight.mul_(magnitude_mask(saved, s))
            scores.append(score(model))
            with torch.no_grad():
                weight.copy_(saved)
        result[name] = scores
    return result
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q3_sensitivity_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q3: sensitivity_scan prunes one layer at a time and restores the model."""
from autograde.checks.lab04_pruning import check_sensitivity_scan

check_sensitivity_scan(sensitivity_scan)
### BEGIN HIDDEN TESTS
check_sensitivity_scan(sensitivity_scan, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The scan of our trained network: test accuracy against each layer's sparsity.

# %%
SPARSITIES = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
layer_names = list(prune.prunable_layers(dense))
scan = plots.attempt(sensitivity_scan, dense, lambda m: train.evaluate(m, loaders.test),
                     SPARSITIES, layer_names)
if scan is None:
    print("Finish Q1 and Q3 to see the sensitivity curves.")
else:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, accs in scan.items():
        n = prune.prunable_layers(dense)[name].weight.numel()
        ax.plot(SPARSITIES, [100 * a for a in accs], "o-", label=f"{name} ({n:,d} weights)")
    ax.axhline(100 * dense_acc - 1, color="k", ls="--", lw=1, label="1 point below dense")
    ax.set(xlabel="sparsity of that layer alone", ylabel="test accuracy (%)",
           title="Sensitivity of each layer")
    ax.legend(fontsize=8)
    plt.show()

# %% [markdown]
# ## Q4. Prune and fine-tune (3 points)
#
# Choose a sparsity per layer from the scan (large layers that tolerate it can
# lose more; the first conv and the classifier are small and sensitive), then
# prune a copy of the dense model with `prune_model` and fine-tune it with
# `train.fit(..., after_step=lambda m: apply_masks(m, masks))`. Goal: **at least
# 75% of all conv and linear weights zero** and **at least 95% test accuracy**.
# Leave the result in `pruned_model`. Fine-tune on `loaders.train` only: the
# check also measures accuracy on new handwriting no one has trained on (at least
# 93%; the grader draws its own and asks for 92%).

# %% nbgrader={"grade": false, "grade_id": "q4_prune_finetune", "locked": false, "schema_version": 3, "solution": true, "task": false}
pruned_model = None
chosen = {}
### BEGIN SOLUTION
chosen = {"features.0": 0.3, "features.3": 0.75, "features.7": 0.85, "fc": 0.5}
pruned_model = copy.deepcopy(dense)
masks = prune_model(pruned_model, chosen)
print(f"right after pruning: {train.evaluate(pruned_model, loaders.test):.1%}")
train.fit(pruned_model, loaders.train, loaders.test, epochs=4, fast_epochs=3, lr=1e-3,
          after_step=lambda m: apply_masks(m, masks))
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q4_prune_finetune_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q4: pruned_model is at least 75% sparse and at least 95% accurate."""
from autograde.checks.lab04_pruning import check_pruned_model

check_pruned_model(pruned_model)

# %% [markdown]
# ## Q5. Channel pruning (3 points)
#
# To make the network *smaller*, remove whole output channels of a conv. Li et
# al. ([arXiv:1608.08710](https://arxiv.org/abs/1608.08710)) rank filters by
# their **L1** norm; this course ranks them by the **L2** norm (the two rankings
# rarely differ, and a check needs one rule): keep the `keep` filters of largest
# L2 norm, **in their original order**. Three layers change
# consistently:
#
# * the conv: fewer filters (and bias entries);
# * its BatchNorm: the same channels' `weight`, `bias`, `running_mean`, `running_var`;
# * the next layer: only the surviving input channels. A `Conv2d` keeps
#   `weight[:, idx]`; a `Linear` after a flatten of `(C, H, W)` keeps, for each
#   surviving channel, its block of `H*W` consecutive inputs.
#
# Write `prune_channels(conv, bn, next_layer, keep)` returning new
# `(conv, bn, next_layer)` modules (leave the originals untouched).

# %% nbgrader={"grade": false, "grade_id": "q5_prune_channels", "locked": false, "schema_version": 3, "solution": true, "task": false}
def prune_channels(conv, bn, next_layer, keep):
    """New (conv, bn, next_layer) keeping the `keep` largest-norm output channels of conv."""
    ### BEGIN SOLUTION
    norms = conv.weight.detach().flatten(1).norm(dim=1)
    idx = torch.sort(torch.topk(norms, keep).indices).values
    new_conv = copy.deepcopy(conv)
    new_conv.out_channels = keep
    new_conv.weight = nn.Parameter(conv.weight.detach()[idx].clone())
    if conv.bias is not None:
        new_conv.bias = nn.Parameter(conv.bias.detach()[idx].clone())
    new_bn = copy.deepcopy(bn)
    new_bn.num_features = keep
    new_bn.weight = nn.Parameter(bn.weight.detach()[idx].clone())
    new_bn.bias = nn.Parameter(bn.bias.detach()[idx].clone())
    new_bn.running_mean = bn.running_mean[idx].clone()
    new_bn.running_var = bn.running_var[idx].clone()
    new_next = copy.deepcopy(next_layer)
    if isinstance(next_layer, nn.Conv2d):
        new_next.in_channels = keep
        new_next.weight = nn.Parameter(next_layer.weight.detach()[:, idx].clone())
    else:
        per = next_layer.in_features // conv.out_channels  # H*W inputs per channel
        cols = (idx[:, None] * per + torch.arange(per)).flatten()
        new_next.in_features = len(cols)
        new_next.weight = nn.Parameter(next_layer.weight.detach()[:, cols].clone())
    return new_conv, new_bn, new_next
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q5_prune_channels_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q5: the pruned layers equal the dense ones on the kept channels, conv and linear next."""
from autograde.checks.lab04_pruning import check_prune_channels

check_prune_channels(prune_channels)
### BEGIN HIDDEN TESTS
check_prune_channels(prune_channels, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q6. Honest model size (2 points)
#
# A sparse tensor is only smaller on disk if its zeros are left out, and then
# the positions of the nonzeros must be stored too:
#
# * **dense**: every element, `bits` each;
# * **bitmask**: one bit per element (kept or not) plus the nonzero values;
# * **CSR** (compressed sparse rows), for the tensor viewed as a matrix with
#   `size(0)` rows (a 1-D tensor is one row): per nonzero a value and a column
#   index, plus `rows + 1` row pointers; indices and pointers are `index_bits` wide.
#
# Write `sparse_bytes(weight, bits, fmt, index_bits=32)` for `fmt` in
# `"dense"`, `"bitmask"`, `"csr"`, rounding the total number of bits up to whole bytes.

# %% nbgrader={"grade": false, "grade_id": "q6_sparse_bytes", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sparse_bytes(weight, bits, fmt, index_bits=32):
    """Bytes to store `weight` in the given format."""
    ### BEGIN SOLUTION
    n, nnz = weight.numel(), int(torch.count_nonzero(weight))
    if fmt == "dense":
        total = n * bits
    elif fmt == "bitmask":
        total = n + nnz * bits
    elif fmt == "csr":
        rows = weight.shape[0] if weight.dim() > 1 else 1
        total = nnz * (bits + index_bits) + (rows + 1) * index_bits
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return (total + 7) // 8
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q6_sparse_bytes_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q6: sparse_bytes counts values and index overhead like efflib.size."""
from autograde.checks.lab04_pruning import check_sparse_bytes

check_sparse_bytes(sparse_bytes)
### BEGIN HIDDEN TESTS
check_sparse_bytes(sparse_bytes, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q7. Weight histograms before and after pruning (2 points)
#
# What magnitude pruning does to a layer shows in its weight histogram: the
# trained weights form a peak around zero, and pruning cuts that peak out.
# Write `histogram(values, bins, lo, hi)` returning an integer tensor of `bins`
# counts: value $v$ with $lo \le v \le hi$ falls in bin
# $\lfloor (v - lo) \cdot bins / (hi - lo) \rfloor$, a value equal to $hi$ in the
# last bin, and values outside $[lo, hi]$ are not counted (what `torch.histc`
# does; it is refused here, `torch.bincount` is allowed).

# %% nbgrader={"grade": false, "grade_id": "q7_histogram", "locked": false, "schema_version": 3, "solution": true, "task": false}
def histogram(values, bins, lo, hi):
    """Counts of `values` in `bins` equal bins over [lo, hi] (hi in the last bin)."""
    ### BEGIN SOLUTION
    v = values.detach().flatten().double()
    v = v[(v >= lo) & (v <= hi)]
    index = torch.floor((v - lo) * bins / (hi - lo)).long().clamp(max=bins - 1)
    return torch.bincount(index, minlength=bins)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q7_histogram_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q7: histogram counts as torch.histc, written by hand."""
from autograde.checks.lab04_pruning import check_histogram

check_histogram(histogram)
### BEGIN HIDDEN TESTS
check_histogram(histogram, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The middle conv's weights in the dense model and in your pruned model of Q4
# (its zeros left out). Where did the pruned weights come from, and what did
# fine-tuning do to the weights that were kept?

# %%
name = "features.3"
dense_w = prune.prunable_layers(dense)[name].weight.detach()
bound = float(dense_w.abs().max())
counts = {"dense": plots.attempt(histogram, dense_w, 60, -bound, bound)}
if pruned_model is not None:
    kept = prune.prunable_layers(pruned_model)[name].weight.detach()
    counts["pruned (nonzero)"] = plots.attempt(histogram, kept[kept != 0], 60, -bound, bound)
if any(c is None for c in counts.values()):
    print("Finish Q7 (and Q4) to see the histograms.")
else:
    edges = torch.linspace(-bound, bound, 61)
    fig, ax = plt.subplots(figsize=(7, 3))
    for label, c in counts.items():
        ax.stairs(c.tolist(), edges.tolist(), fill=label == "dense", alpha=0.6, label=label)
    ax.set(xlabel="weight value", ylabel="count", title=f"{name}: before and after pruning")
    ax.legend()
    plt.show()

# %% [markdown]
# ## What each kind of pruning buys, measured
#
# Three versions of the network: the dense one; a fine-grained 75%-sparse one
# (every conv and linear layer, fine-tuned with masks); and a channel-pruned
# one keeping half of every conv's channels (`prune.channel_prune`, the
# model-level version of your Q5, fine-tuned a little). Both pruned versions
# drop about three quarters of the weights. For each: accuracy, MACs a dense
# kernel executes, honest storage at 32 bits, and batch-256 latency on this
# machine.

# %%
sparse = copy.deepcopy(dense)
sparse_pruner = prune.Pruner(sparse, {n: 0.75 for n in prune.prunable_layers(sparse)})
train.fit(sparse, loaders.train, None, epochs=3, fast_epochs=2, lr=1e-3,
          after_step=sparse_pruner.apply)
slim = prune.channel_prune(dense, 0.5)
train.fit(slim, loaders.train, None, epochs=3, fast_epochs=2, lr=1e-3)
batch = torch.randn(256, 1, 8, 8)
variants = {"dense": dense, "75% fine-grained": sparse, "50% channels": slim}
report = {}
for name, model in variants.items():
    model.eval()
    prof = efflib.profile(model, batch[:1])
    best = min(("dense", "bitmask", "csr"), key=lambda f: prof.model_size(32, f))
    lat = efflib.measure_latency(model, batch, warmup=2, repeats=5 if FAST else 30,
                                 budget_s=0.3 if FAST else 1.0)
    report[name] = dict(acc=train.evaluate(model, loaders.test), macs=prof.macs,
                        kb=prof.model_size(32, best) / 1e3, fmt=best, ms=lat.median * 1e3,
                        iqr=lat.iqr * 1e3)
    r = report[name]
    print(f"{name:17s} acc {r['acc']:.1%}  MACs {r['macs']:>9,d}  size {r['kb']:6.1f} kB "
          f"({r['fmt']})  latency {r['ms']:.2f} ms")
fig, axes = plt.subplots(1, 3, figsize=(11, 2.6), sharey=True)  # one row of names
for ax, key, label in zip(axes, ("macs", "kb", "ms"),
                          ("MACs per image", "storage (kB, best format)",
                           "latency, batch 256 (ms)"),
                          strict=True):
    ax.barh(list(report), [r[key] for r in report.values()],
            xerr=[r["iqr"] / 2 for r in report.values()] if key == "ms" else None,
            color=["tab:gray", "tab:orange", "tab:green"], capsize=4)
    ax.set_title(label)
axes[0].invert_yaxis()  # the dense model on top
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Q8. Reflection (2 points, graded by hand)
#
# Using the three bars above: why did the fine-grained model keep the dense
# model's latency although three quarters of its weights are zero, and why did
# its storage shrink less than 4x? Name one kind of hardware or sparsity
# pattern that would let fine-grained sparsity pay off in speed (three to five
# sentences).

# %% [markdown] nbgrader={"grade": true, "grade_id": "q8_reflection", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The fine-grained model still runs PyTorch's dense convolution kernels, which
# multiply every weight whether it is zero or not, so it executes the same MACs
# and takes the same time; only the channel-pruned model has smaller tensors
# and therefore fewer MACs and a shorter latency. Its storage shrinks less than
# 4x because the positions of the remaining weights must be stored too: with
# CSR each nonzero carries a 32-bit column index, so a quarter of the weights
# cost about half of the dense size (a bitmask costs one bit per weight
# instead). Fine-grained sparsity pays off on accelerators that skip zeros
# (EIE-style sparse engines) or with a regular pattern such as 2:4 structured
# sparsity, which NVIDIA's Ampere tensor cores execute at twice the dense rate.
# ### END SOLUTION
