# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 07: Beyond compression
#
# *Efficient Deep Learning for Edge Deployment*
#
# Pruning (Lab 04) and quantization (Lab 05) shrink a network that someone has
# already designed and trained. Three more ideas change what is trained, what
# runs, and what is designed:
#
# * **Knowledge distillation** (Hinton et al., [arXiv:1503.02531](https://arxiv.org/abs/1503.02531)):
#   a small *student* learns from a large *teacher*'s softened output
#   distribution, which says more per image than a hard label does.
# * **Dynamic computation**, here an **early exit** (BranchyNet, Teerapittayanon
#   et al., [arXiv:1709.01686](https://arxiv.org/abs/1709.01686)): easy images
#   stop at a cheap classifier halfway through the network, and only hard
#   ones pay for the rest.
# * **Neural architecture search** under a hardware budget: a latency *lookup
#   table* predicts a candidate's latency from per-layer measurements, as in
#   ProxylessNAS ([arXiv:1812.00332](https://arxiv.org/abs/1812.00332)) and
#   MCUNet ([arXiv:2007.10319](https://arxiv.org/abs/2007.10319)), so a search
#   can throw out slow candidates without timing them.
#
# The lab ends with a capstone: put the digit classifier on a budget of size,
# latency and accuracy, with anything from the course.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# Hidden checks use random cases. Models you hand in are rebuilt and measured by
# the grader, so they must be made of standard `torch.nn` layers (efflib's models
# are). Q8 is read by a person.

# %%
import itertools
import random

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

import efflib
from efflib import data, models, nas, plots, proxies, train
from efflib.latency import fast_mode, one_noise_warning, threads_for_load
from efflib.quant import linear

torch.manual_seed(0)
FAST = fast_mode()  # True while the grader runs this notebook: shorter training and timing
# one thread under the grader (notebooks run side by side) or on a busy machine
torch.set_num_threads(1 if FAST else threads_for_load())
loaders = data.digits(seed=0)
x1 = torch.randn(1, 1, 8, 8)  # one image: edge devices see them one at a time
measured = {}  # this lab's numbers, collected for the README
print(f"torch {torch.__version__}, fast mode {FAST}")

# %% [markdown]
# The teacher: efflib's digit CNN at width 32 (94,186 parameters), trained for
# a few seconds on all 1,347 training images. It stays frozen from here on.

# %%
torch.manual_seed(0)
teacher = models.digit_cnn(width=32)
train.fit(teacher, loaders.train, None, epochs=8, fast_epochs=5)
teacher.eval().requires_grad_(False)
measured["teacher_accuracy"] = train.evaluate(teacher, loaders.test)
print(f"teacher: {sum(p.numel() for p in teacher.parameters()):,d} parameters, "
      f"test accuracy {measured['teacher_accuracy']:.1%}")

# %% [markdown]
# The student: a small MLP (64 -> 32 -> 10, 2,410 parameters, 40 times fewer
# than the teacher), and the only **100** training images that, in Q2, come
# with labels. `kd_loss` is the training loss of Q2, built on your Q1.

# %%
few = DataLoader(Subset(loaders.train.dataset, range(100)), batch_size=32, shuffle=True,
                 generator=torch.Generator().manual_seed(1))


def make_student(seed):
    """The student MLP, initialised from `seed`."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def kd_loss(m, x, y):
    return distillation_loss(m(x), teacher(x), y, T=4.0, alpha=0.9)


# %% [markdown]
# ## Q1. The distillation loss (3 points)
#
# Soften both networks' outputs with a temperature $T$:
# $p_i = \mathrm{softmax}(z_i / T)$ for the teacher's logits $z$ and
# $q_i = \mathrm{softmax}(s_i / T)$ for the student's logits $s$. A higher $T$
# spreads the teacher's probability over the wrong classes too, and *which*
# wrong classes look alike (a 3 and an 8) is what the student learns from. The
# loss mixes the divergence from the teacher with the ordinary cross-entropy on
# the true label $y$:
#
# $$L = \alpha\, T^2\, \mathrm{KL}(p \,\|\, q) + (1 - \alpha)\, \mathrm{CE}(s, y),
# \qquad \mathrm{KL}(p \,\|\, q) = \sum_i p_i (\log p_i - \log q_i).$$
#
# The $T^2$ keeps the soft term's gradients the same size whatever $T$ is
# (they shrink as $1/T^2$). Both terms are means over the batch.
#
# Write `distillation_loss(student_logits, teacher_logits, labels, T, alpha)`
# returning a scalar tensor. Use `F.log_softmax` for the logarithms (it does not
# overflow); `F.kl_div` is refused, `F.cross_entropy` is fine for the hard term.

# %% nbgrader={"grade": false, "grade_id": "q1_distillation_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def distillation_loss(student_logits, teacher_logits, labels, T, alpha):
    """alpha * T^2 * KL(teacher || student), both at temperature T, + (1 - alpha) * CE."""
    ### BEGIN SOLUTION
    log_p = F.log_softmax(teacher_logits / T, dim=1)   # (N, classes)
    log_q = F.log_softmax(student_logits / T, dim=1)   # (N, classes)
    kl = (log_p.exp() * (log_p - log_q)).sum(1).mean()
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_distillation_loss_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q1: distillation_loss equals alpha T^2 KL + (1 - alpha) CE on random logits."""
from autograde.checks.lab07_beyond_compression import check_distillation_loss

check_distillation_loss(distillation_loss)
### BEGIN HIDDEN TESTS
check_distillation_loss(distillation_loss, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q2. A student from 100 labelled images (3 points)
#
# Labels are expensive; images are not. Suppose only the **100** images of
# `few` come with labels. Trained on those hard labels alone, the student MLP
# overfits them; the teacher's soft outputs on the same 100 images carry far
# more information per image (Hinton et al. trained a speech model on 3% of
# its data this way).
#
# Train `student` (made by `make_student(0)`) on `few` with your
# `distillation_loss` at $T = 4$, $\alpha = 0.9$: pass `loss=kd_loss` to
# `train.fit` with `epochs=40, lr=1e-2`. The check asks for at least 82%
# test accuracy from a model of at most 2,500 parameters, and 82% on new
# handwriting that no one has trained on (the grader draws its own and asks for
# 81% there).

# %% nbgrader={"grade": false, "grade_id": "q2_student", "locked": false, "schema_version": 3, "solution": true, "task": false}
student = None
### BEGIN SOLUTION
student = make_student(0)
train.fit(student, few, None, epochs=40, lr=1e-2, loss=kd_loss)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q2_student_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q2: the distilled student has at most 2,500 parameters and 82% test accuracy."""
from autograde.checks.lab07_beyond_compression import check_student

check_student(student)

# %% [markdown]
# Is the gain real, or one lucky initialisation? The same student, trained
# from the same three seeds on the same 100 images, once with hard labels only
# and once distilled. A third run takes the premise further: images are cheap,
# so it distils on **every** training image with no label at all ($\alpha = 1$:
# the teacher's soft outputs only), for about as many images seen as the other
# two (3 epochs of 1,347 images against 40 epochs of 100).

# %%
seeds = [0, 1, 2]
ready = plots.attempt(distillation_loss, torch.zeros(1, 2), torch.zeros(1, 2),
                      torch.zeros(1, dtype=torch.long), 1.0, 0.5) is not None


def unlabelled_loss(m, x, y):
    """Soft targets only: the labels are replaced by zeros, which alpha = 1 ignores."""
    return distillation_loss(m(x), teacher(x), torch.zeros_like(y), T=4.0, alpha=1.0)


recipes = {"hard labels": (None, few, 40), "distilled": (kd_loss, few, 40),
           "distilled, unlabelled": (unlabelled_loss, loaders.train, 3)}
runs = {kind: [] for kind in recipes}
for seed in tqdm(seeds, desc="seeds"):
    for kind, (loss, images, epochs) in recipes.items():
        if loss is not None and not ready:
            continue  # Q1 not written yet
        m = make_student(seed)
        train.fit(m, images, None, epochs=epochs, lr=1e-2, seed=seed, loss=loss,
                  progress=False)
        runs[kind].append(train.evaluate(m, loaders.test))
fig, ax = plt.subplots(figsize=(6, 3.2))
for i, (kind, accs) in enumerate(runs.items()):
    ax.scatter([100 * a for a in accs], [i] * len(accs), s=60, label=kind)
ax.axvline(100 * measured["teacher_accuracy"], color="k", ls="--", lw=1, label="teacher")
ax.set(yticks=range(len(runs)), yticklabels=list(runs), xlabel="test accuracy (%)",
       title="The student, three seeds each", ylim=(-0.7, len(runs) - 0.3))
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside, not on, the dots
plt.tight_layout()
plt.show()
for kind, accs in runs.items():
    if accs:
        print(f"{kind:22s}: " + ", ".join(f"{a:.1%}" for a in accs))
if runs["distilled"]:
    measured["distillation"] = {k: [round(a, 4) for a in v] for k, v in runs.items()}

# %% [markdown]
# ## Q3. Early exit (3 points)
#
# `models.early_exit_cnn` is a digit CNN with two classifiers: `exit1`, a
# linear layer on the features of `block1` (two convs), and `head`, after two
# more convs in `block2`. `model.exits(x)` returns both outputs, so one
# training run teaches both (their losses are summed).
#
# At inference an image **exits early** when `exit1` is confident: its largest
# softmax probability is at least `threshold`. (BranchyNet itself exits when
# the *entropy* of the branch's softmax is low enough; the largest probability
# is the rule of SDN, Kaya et al., [arXiv:1810.07052](https://arxiv.org/abs/1810.07052),
# and MSDNet, Huang et al., [arXiv:1703.09844](https://arxiv.org/abs/1703.09844).
# Both measure confidence; this one has a threshold that reads as a probability.) Write
# `early_exit(model, x, threshold)` returning `(predictions, exited)`: the
# predicted class of each image (exit1's for the images that exited, the
# head's for the others) and a bool tensor saying which exited. Run
# `model.block2` and `model.head` **only on the images that did not exit**:
# that is the work an early exit saves (the check can tell: in its models,
# block2 spoils a batch that holds an image which should have exited).

# %%
torch.manual_seed(0)
branchy = models.early_exit_cnn(width=8)
train.fit(branchy, loaders.train, None, epochs=6, fast_epochs=3,
          loss=lambda m, x, y: sum(F.cross_entropy(out, y) for out in m.exits(x)))
print(f"full network: {train.evaluate(branchy, loaders.test):.1%} test accuracy")


# %% nbgrader={"grade": false, "grade_id": "q3_early_exit", "locked": false, "schema_version": 3, "solution": true, "task": false}
@torch.no_grad()
def early_exit(model, x, threshold):
    """(predictions, exited): exit1's class where its confidence >= threshold, else head's."""
    ### BEGIN SOLUTION
    h = model.block1(x)                                    # (N, C, 4, 4)
    confidence, pred = model.exit1(h).softmax(1).max(1)    # (N,), (N,)
    exited = confidence >= threshold
    stay = ~exited
    if stay.any():
        pred[stay] = model.head(model.block2(h[stay])).argmax(1)
    return pred, exited
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q3_early_exit_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q3: early_exit predicts like the two classifiers and runs block2 only where needed."""
from autograde.checks.lab07_beyond_compression import check_early_exit

check_early_exit(early_exit)
### BEGIN HIDDEN TESTS
check_early_exit(early_exit, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The price of the exit path and of the rest, counted by `efflib.profile`, and
# the sweep: for each threshold, test accuracy against the **average** MACs
# per image (every image pays for block1 and exit1; only those that stay pay
# for block2 and the head).

# %%
branchy.eval()
exit_path = nn.Sequential(branchy.block1, branchy.exit1)
rest = nn.Sequential(branchy.block2, branchy.head)
macs_exit = efflib.profile(exit_path, x1).macs
macs_rest = efflib.profile(rest, torch.randn(1, 16, 4, 4)).macs
print(f"exit path {macs_exit:,d} MACs, the rest {macs_rest:,d} MACs per image")
images, labels = next(iter(loaders.test))  # the whole test split (450 images)
device = next(branchy.parameters()).device
thresholds = [0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1.01]
curve = []
for t in thresholds:
    out = plots.attempt(early_exit, branchy, images.to(device), t)
    if out is None:
        break
    pred, exited = out
    rate = exited.float().mean().item()
    acc = (pred.cpu() == labels).float().mean().item()
    curve.append((t, rate, acc, macs_exit + (1 - rate) * macs_rest))
if len(curve) < len(thresholds):
    print("Finish Q3 to see the accuracy against the average MACs.")
else:
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.plot([c[3] / 1e3 for c in curve], [100 * c[2] for c in curve], "o-")
    ax.set(xlabel="average thousand MACs per image", ylabel="test accuracy (%)",
           title="Early exit: the threshold trades accuracy for computation")
    ax.margins(x=0.12, y=0.15)  # room for the labels inside the axes
    plt.tight_layout()
    plots.label_points(ax, [c[3] / 1e3 for c in curve], [100 * c[2] for c in curve],
                       [f"{t:g} ({rate:.0%} exit)" for t, rate, _, _ in curve])
    plt.show()
    measured["early_exit"] = [[t, round(r, 3), round(a, 4), round(m)] for t, r, a, m in curve]

# %% [markdown]
# MACs are not time. The exit path against the full network at batch 1 on
# this machine, timed in turns (`efflib.measure_in_turns`) so that a load that
# comes and goes slows both alike:

# %%
repeats = 20 if FAST else 100
lats = efflib.measure_in_turns({"exit": (exit_path, x1), "full": (branchy, x1)}, warmup=5,
                               repeats=repeats)
lat_exit, lat_full = lats["exit"], lats["full"]
print(f"exit path: {lat_exit.median * 1e3:.3f} ms for {macs_exit:,d} MACs")
print(f"full:      {lat_full.median * 1e3:.3f} ms for {macs_exit + macs_rest:,d} MACs")
print(f"the exit saves {1 - macs_exit / (macs_exit + macs_rest):.0%} of the MACs and "
      f"{1 - lat_exit.median / lat_full.median:.0%} of the time")

# %% [markdown]
# ## Q4. A latency lookup table (3 points)
#
# The search space of `efflib.nas` has four knobs: `width` (8, 12, 16),
# `depth` (1-3 blocks), `kernel` (3 or 5) and `expand` (1, 2, 4): 54 networks
# in all. A configuration's layers, with the **key** under which each one's
# latency is stored in the table:
#
# * the stem, a 3x3 conv from 1 to `width` channels at 8x8: key `("stem", width)`;
# * `depth` blocks, each an inverted residual without the residual (Lab 03's
#   MobileNetV2 block: a 1x1 expansion by `expand`, a depthwise conv, and a 1x1
#   projection with no ReLU after it, the linear bottleneck).
#   Block $i$ (from 0) has stride 2 and doubles the channels when
#   $i < 2$, and keeps both when $i = 2$. Its key is
#   `("block", c_in, c_out, kernel, expand, stride, resolution)`, where
#   `resolution` is the side of its **input** (8 for the first block);
# * the head (global pooling and a linear layer): key `("head", channels, resolution)`,
#   with the channels and side of the last block's output.
#
# For example `{"width": 8, "depth": 1, "kernel": 3, "expand": 1}` has the keys
# `("stem", 8)`, `("block", 8, 16, 3, 1, 2, 8)` and `("head", 16, 4)`.
#
# Write `predict_latency(config, table)`: the sum of the table's entries for
# the configuration's layers. (`efflib.nas`'s own `layer_keys` and
# `predict_latency` are refused.)

# %% nbgrader={"grade": false, "grade_id": "q4_predict_latency", "locked": false, "schema_version": 3, "solution": true, "task": false}
def predict_latency(config, table):
    """Sum of the table's latencies for the stem, each block and the head of `config`."""
    ### BEGIN SOLUTION
    channels, res = config["width"], 8
    total = table[("stem", channels)]
    for i in range(config["depth"]):
        stride = 2 if i < 2 else 1
        out = 2 * channels if stride == 2 else channels
        total += table[("block", channels, out, config["kernel"], config["expand"], stride, res)]
        channels, res = out, res // stride
    return total + table[("head", channels, res)]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4_predict_latency_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q4: predict_latency sums the right table entries for any configuration."""
from autograde.checks.lab07_beyond_compression import check_predict_latency

check_predict_latency(predict_latency)
### BEGIN HIDDEN TESTS
check_predict_latency(predict_latency, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The table for this machine: every distinct layer of the space (63 of them)
# timed once at batch 1, a second or two in all. Then, for a sample of whole
# networks, the prediction against a measurement of the network itself. How far
# off are the predictions in this run, and in which direction? Either can
# happen, and the direction can change from run to run: think of what a layer
# timed alone pays that a network pays once (the call into PyTorch, a cold
# cache), and of what a whole network pays that its layers timed alone do not.

# %%
sample = random.Random(0).sample(nas.all_configs(), 6 if FAST else 12)
pairs = []
with one_noise_warning("of the latencies in this cell"):  # one line, however many
    table = nas.measure_table(nas.all_configs(), repeats=10 if FAST else 30)
    for config in sample:
        predicted = plots.attempt(predict_latency, config, table)
        if predicted is None:
            break
        net = nas.tiny_net(config).eval()
        real = efflib.measure_latency(net, x1, warmup=3, repeats=10 if FAST else 30).median
        pairs.append((predicted * 1e3, real * 1e3))
if len(pairs) < len(sample):
    print("Finish Q4 to compare the table's predictions with measurements.")
else:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(*zip(*pairs, strict=True))
    top = max(max(p) for p in pairs) * 1.1
    ax.plot([0, top], [0, top], "k--", lw=1, label="prediction = measurement")
    ax.set(xlabel="predicted by the table (ms)", ylabel="measured (ms)", xlim=(0, top),
           ylim=(0, top), title="Latency lookup table, batch 1")
    ax.legend(fontsize=8)
    plt.tight_layout()
    plt.show()
    ratio = sorted(real / pred for pred, real in pairs)[len(pairs) // 2]
    print(f"median measured / predicted: {ratio:.2f}")
    measured["table_ratio"] = round(ratio, 3)

# %% [markdown]
# ## Q5. The Pareto front (2 points)
#
# A search returns many candidates, each with a cost (MACs) and a quality
# (accuracy). A candidate is **dominated** when another has at most its MACs
# and at least its accuracy, and is strictly better in one of the two. The
# candidates nobody dominates form the **Pareto front**: the only ones worth
# choosing between.
#
# Write `pareto_front(macs, accuracy)` returning the indices of the
# non-dominated candidates, sorted by MACs (then by index). Two identical
# candidates do not dominate each other.

# %% nbgrader={"grade": false, "grade_id": "q5_pareto_front", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pareto_front(macs, accuracy):
    """Indices of the candidates no other candidate dominates, by MACs then index."""
    ### BEGIN SOLUTION
    front = []
    for i, (m, a) in enumerate(zip(macs, accuracy, strict=True)):
        beaten = any(m2 <= m and a2 >= a and (m2 < m or a2 > a)
                     for m2, a2 in zip(macs, accuracy, strict=True))
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: (macs[i], i))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q5_pareto_front_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q5: pareto_front keeps exactly the non-dominated candidates, sorted by MACs."""
from autograde.checks.lab07_beyond_compression import check_pareto_front

check_pareto_front(pareto_front)
### BEGIN HIDDEN TESTS
check_pareto_front(pareto_front, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q6. Mutation (2 points)
#
# Evolutionary search breeds new candidates from good ones. In *aging
# evolution* (Real et al., [arXiv:1802.01548](https://arxiv.org/abs/1802.01548))
# a child is its parent with **one** knob changed, and the oldest member of
# the population dies each time a child is born, so no lucky early candidate
# lives forever.
#
# Write `mutate(config, space, seed)`: a **new** dict equal to `config` except
# for one knob, chosen at random among those with more than one choice in
# `space`, set to a different value drawn at random from that knob's choices.
# Use `random.Random(seed)`, so the same seed gives the same child. Leave
# `config` itself unchanged, and do not assume the knobs of `nas.SPACE`: the
# hidden checks bring spaces of their own.

# %% nbgrader={"grade": false, "grade_id": "q6_mutate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mutate(config, space, seed):
    """A copy of `config` with one knob (of those with a choice) set to another value."""
    ### BEGIN SOLUTION
    rng = random.Random(seed)
    knob = rng.choice(sorted(k for k, choices in space.items() if len(choices) > 1))
    child = dict(config)
    child[knob] = rng.choice([v for v in space[knob] if v != config[knob]])
    return child
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q6_mutate_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q6: mutate changes exactly one knob to another allowed value, reproducibly."""
from autograde.checks.lab07_beyond_compression import check_mutate

check_mutate(mutate)
### BEGIN HIDDEN TESTS
check_mutate(mutate, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Aging evolution under two constraints
#
# The search keeps a population of 4. Each step samples 2 members, mutates the
# more accurate one with your `mutate`, and keeps the child only if it meets
# both constraints: at most 150,000 MACs (counted by `efflib.profile`) and a
# latency, predicted by **your** table, among the fastest two thirds of the
# space (a limit relative to this machine, so it means the same on a laptop).
# Rejected children cost neither training nor timing. Each kept child is
# trained briefly (three epochs) and scored on the test split; training every
# candidate fully would cost minutes. Short training often ranks candidates
# much as longer training would, which is all a search needs, but only often:
# how well it does here, you measure below. The front the search finds is an
# estimate to check with longer training (weight-shared
# supernets, as in Once-for-All, [arXiv:1908.09791](https://arxiv.org/abs/1908.09791),
# go further and train once for all candidates).

# %%
MAX_MACS = 150_000
budget = 6 if FAST else 12  # candidates trained
ready = all(plots.attempt(fn, *args) is not None for fn, args in (
    (predict_latency, (nas.all_configs()[0], table)),
    (mutate, (nas.all_configs()[0], nas.SPACE, 0)),
))
limit = None
if ready:
    predicted_all = sorted(predict_latency(c, table) for c in nas.all_configs())
    limit = predicted_all[2 * len(predicted_all) // 3]


macs_of = {}  # config -> MACs per image, counted once (a rejected child may come back)


def feasible(config):
    key = tuple(sorted(config.items()))
    if key not in macs_of:
        macs_of[key] = efflib.profile(nas.tiny_net(config), x1).macs
    return macs_of[key] <= MAX_MACS and predict_latency(config, table) <= limit


first_epoch = {}  # each candidate's test accuracy after its first epoch, read on the way


def trained_accuracy(config):
    torch.manual_seed(0)
    net = nas.tiny_net(config)
    run = train.fit(net, loaders.train, loaders.test, epochs=3, fast_epochs=2, lr=1e-2,
                    progress=False)
    first_epoch[tuple(sorted(config.items()))] = run.test_accuracy[0]
    return run.test_accuracy[-1]


history, population, seen = [], [], set()  # history: (config, MACs, accuracy), as trained
rng = random.Random(0)
bar = tqdm(total=budget, desc="candidates trained", disable=not ready)
for _ in range(300 if ready else 0):  # tries, rejected children included
    if len(history) == budget:
        break
    if len(population) < 4:
        child = nas.sample(rng)  # the first members: drawn at random
    else:
        parent = max(rng.sample(population, 2), key=lambda member: member[2])
        child = mutate(parent[0], nas.SPACE, rng.randrange(2**31))
    key = tuple(sorted(child.items()))
    if key in seen or not feasible(child):
        continue
    seen.add(key)
    member = (child, macs_of[key], trained_accuracy(child))
    history.append(member)
    population.append(member)
    if len(population) > 4:
        population.pop(0)  # the oldest dies
    bar.update()
bar.close()
front = plots.attempt(pareto_front, [c[1] for c in history], [c[2] for c in history])
if not history or front is None:
    print("Finish Q4, Q5 and Q6 to run the search and see its Pareto front.")
else:
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    points = ax.scatter([c[1] / 1e3 for c in history], [100 * c[2] for c in history],
                        c=range(len(history)), cmap="viridis", label="candidates")
    fig.colorbar(points, label="order trained")
    ax.plot([history[i][1] / 1e3 for i in front], [100 * history[i][2] for i in front],
            "-", color="tab:red", label="Pareto front")
    ax.set(xlabel="thousand MACs per image", ylabel="test accuracy after 3 epochs (%)",
           title="Aging evolution under a MAC and a latency limit")
    ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.15, y=0.15)  # room for the labels inside the axes
    plt.tight_layout()
    plots.label_points(ax, [history[i][1] / 1e3 for i in front],
                       [100 * history[i][2] for i in front],
                       ["w{width} d{depth} k{kernel} e{expand}".format(**history[i][0])
                        for i in front])
    plt.show()
    best = max(history, key=lambda c: c[2])
    print("best found:", best[0], f"{best[1]:,d} MACs, {best[2]:.1%} after brief training")
    measured["search"] = {"candidates": len(history), "best": best[0], "macs": best[1],
                          "accuracy": round(best[2], 4)}

# %% [markdown]
# ### Did the search converge, and could it have skipped the training?
#
# Two looks at the candidates the search trained, at no extra training.
#
# * **Convergence.** On the left, each candidate's accuracy in the order it was
#   trained, and the best found so far. A search has converged when that line
#   stays flat for many candidates. A line still climbing at the last candidate
#   says that the budget ran out first.
# * **A zero-cost proxy.** On the right, each candidate's *gradient norm at
#   initialisation* (the sum of the norms of the loss's gradients on one batch
#   of an untrained network; Abdelfattah et al., Zero-Cost Proxies for
#   Lightweight NAS, [arXiv:2101.08134](https://arxiv.org/abs/2101.08134))
#   against its accuracy after brief training. Computing it needs no training
#   at all. Kendall's tau counts how often two scores put a pair of candidates
#   in the same order: 1 means always, 0 means no better than chance, -1 means
#   always reversed. MACs are scored the same way, for comparison.
# * **Shorter training.** The same trainings, read after their first epoch
#   (the test accuracy `train.fit` records each epoch): the tau of that ranking
#   against the final one says whether a third of the training would have
#   ranked the candidates alike, and so how far to trust three epochs against
#   thirty.
#
# Before you go on, read both panels and the three taus. Would the search have
# found its best candidate with half the budget? Would the proxy, or one epoch,
# have told you which candidates were worth training?

# %%
if len(history) < 3:
    print("Run the search above (Q4 to Q6) to see how it converged.")
else:
    accuracy = [100 * c[2] for c in history]
    best_so_far = list(itertools.accumulate(accuracy, max))
    xb, yb = next(iter(loaders.train))  # one batch of the training split
    grad_norms = []
    for config, _, _ in history:
        torch.manual_seed(0)  # the same initialisation as trained_accuracy's
        grad_norms.append(proxies.grad_norm_at_init(nas.tiny_net(config), xb, yb))
    taus = {"gradient norm at init": proxies.kendall_tau(grad_norms, accuracy),
            "MACs": proxies.kendall_tau([c[1] for c in history], accuracy),
            "accuracy after the first epoch": proxies.kendall_tau(
                [first_epoch[tuple(sorted(c[0].items()))] for c in history], accuracy)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    order = range(1, len(history) + 1)
    left.scatter(order, accuracy, s=14, color="0.6", label="each candidate")
    left.step(order, best_so_far, where="post", color="tab:blue", label="best so far")
    left.set(xlabel="candidates trained", ylabel="test accuracy after 3 epochs (%)",
             title="How the search converged")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(fontsize=8, loc="best")  # where it covers the fewest candidates
    right.scatter(grad_norms, accuracy, color="tab:green", s=18)
    right.set(xlabel="gradient norm at initialisation (one batch)",
              ylabel="test accuracy after 3 epochs (%)",
              title=f"A zero-cost proxy (Kendall tau {taus['gradient norm at init']:+.2f})")
    plt.tight_layout()
    plt.show()
    found = best_so_far.index(best_so_far[-1]) + 1
    print(f"the best candidate was candidate {found} of the {len(history)} trained")
    for name, tau in taus.items():
        print(f"Kendall tau of {name} against accuracy after the last epoch: {tau:+.2f}")
    measured["proxies"] = {"best_found_at": found,
                           **{name: round(tau, 3) for name, tau in taus.items()}}

# %% [markdown]
# ## Q7. The capstone: a digit classifier on a budget (4 points)
#
# Hand in `final_model`, an `nn.Sequential` of `torch.nn` layers (a
# `nas.tiny_net`, efflib's `DigitCNN`, or your own stack), and `final_bits`,
# the bits its weights are stored at: **at most 8** (a float model, however
# small, is not the course's work). The grader rebuilds it and measures:
#
# * **size at most 20,000 bytes**: every weight tensor (conv and linear) at
#   `final_bits` bits plus a 32-bit scale and zero point per output channel, so
#   each output channel may hold at most $2^{\text{final\_bits}}$ distinct values
#   (quantize per channel, Lab 05); biases and BatchNorm's parameters and
#   statistics at 32 bits;
# * **test accuracy at least 97%**, and at least 92% on new handwriting no one
#   has trained on (the grader draws its own and asks for 91% there; train on
#   `loaders.train` only);
# * **batch-1 latency at most 2.5 times that of efflib's width-32 DigitCNN**
#   (`models.digit_cnn(width=32)`), *priced* rather than timed. The grader runs
#   one forward pass and adds up a fixed price list: each layer call costs a
#   fixed time by kind (conv, grouped or depthwise conv, batch norm, linear,
#   anything else) plus a time per MAC or output element. The list was fitted to
#   batch-1 timings of 75 models on the course machine and is printed below.
#   Timings on a shared grading machine move with its load, even a ratio timed
#   in turns, and a grade must not.
#
# Combine what you like: a searched architecture, distillation from the
# teacher, pruning (Lab 04), quantization (Lab 05), and, for the brave, export
# it to C with Lab 06's tools.

# %% nbgrader={"grade": false, "grade_id": "q7_capstone", "locked": false, "schema_version": 3, "solution": true, "task": false}
final_model = None
final_bits = 32
### BEGIN SOLUTION
config = {"width": 12, "depth": 2, "kernel": 3, "expand": 4}  # near the search's front
torch.manual_seed(0)
final_model = nas.tiny_net(config)
train.fit(final_model, loaders.train, None, epochs=8, fast_epochs=5, lr=1e-2,
          loss=lambda m, x, y: distillation_loss(m(x), teacher(x), y, T=4.0, alpha=0.7))
fp32_acc = train.evaluate(final_model, loaders.test)  # to see what quantizing costs
final_bits = 8
spec = linear.QuantSpec(final_bits, symmetric=True)
with torch.no_grad():  # per-channel 8-bit weights, kept as floats on the integer grid
    for layer in final_model.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            scale, zero = linear.qparams(layer.weight, spec, axis=0)
            layer.weight.copy_(linear.fake_quantize(layer.weight, scale, zero, spec, axis=0))
final_model = final_model.eval()
print(f"test accuracy {fp32_acc:.1%} in fp32, "
      f"{train.evaluate(final_model, loaders.test):.1%} at {final_bits} bits")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q7_capstone_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q7: final_model fits in 20 kB at final_bits, reaches 97%, and is fast enough at batch 1."""
from autograde.checks.lab07_beyond_compression import check_capstone

check_capstone(final_model, final_bits)

# %% [markdown]
# Your model beside the teacher: size and accuracy as the grader measures them,
# latency both priced (the grader's list) and timed on this machine now.

# %%
from autograde.checks.lab07_beyond_compression import (
    BUDGET_TIMES,
    PRICE_CALL_US,
    PRICE_US,
    batch1_ms,
    priced_us,
    stored_bytes,
)

print(f"price list: {PRICE_CALL_US:g} us per model call, then per layer call by kind "
      "(us per call + us per MAC or output element):")
for kind, (per_call, per_work) in PRICE_US.items():
    print(f"  {kind:13s} {per_call:6.1f} + {per_work:.2g}")
if final_model is not None:
    final_model = final_model.eval()
    rows = {"teacher (fp32)": (teacher, 32), "final_model": (final_model, final_bits)}
    reference_us = priced_us(models.digit_cnn(width=32))
    report = {}
    for name, (model, bits) in rows.items():
        model_cpu = model.to("cpu")
        ms, reference_ms = batch1_ms(model_cpu, rounds=2 if FAST else 5)
        report[name] = dict(bytes=stored_bytes(model_cpu, bits),
                            acc=train.evaluate(model_cpu, loaders.test),
                            macs=efflib.profile(model_cpu, x1).macs, ms=ms,
                            priced_ms=priced_us(model_cpu) / 1e3,
                            times=priced_us(model_cpu) / reference_us,
                            timed_times=ms / reference_ms)
        r = report[name]
        print(f"{name:15s} {r['bytes']:>9,d} B  {r['macs']:>9,d} MACs  {r['acc']:.1%}  "
              f"priced {r['priced_ms']:.3f} ms ({r['times']:.1f} times the width-32 "
              f"DigitCNN; the budget: {BUDGET_TIMES}), timed {r['ms']:.3f} ms "
              f"({r['timed_times']:.1f} times)")
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for ax, key, label in zip(axes, ("bytes", "macs", "ms"),
                              ("stored bytes", "MACs per image", "batch-1 latency (ms)"),
                              strict=True):
        ax.bar(list(report), [r[key] for r in report.values()],
               color=["tab:gray", "tab:green"])
        ax.set_title(label)
    axes[2].scatter(list(report), [r["priced_ms"] for r in report.values()], marker="_",
                    s=600, color="black", zorder=3, label="priced")
    axes[2].legend(loc="upper right", fontsize=8)
    plt.tight_layout()
    plt.show()
    measured["capstone"] = {k: round(v, 4) for k, v in report["final_model"].items()}

# %% [markdown]
# ## Q8. Reflection (2 points, graded by hand)
#
# Which technique bought the most in your capstone, and what did it cost? Use
# the early-exit measurements and your capstone's numbers to explain why MACs,
# parameters and latency disagree as measures of "small" on this CPU (three to
# six sentences).

# %% [markdown] nbgrader={"grade": true, "grade_id": "q8_reflection", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Quantizing the weights to 8 bits bought the most size: it cut the searched
# network's stored bytes about 2.5x (not 4x: the batch norms, the biases and
# each channel's scale and zero point stay at 32 bits, and in a network this
# small they are a large share) at no measurable accuracy cost, while
# distillation, which Q2's seeds showed to beat hard labels, adds nothing at
# inference time (it only costs the teacher's forward passes during training).
# The three measures disagree
# because they count different things: parameters count storage, MACs count
# arithmetic, and at batch 1 on a CPU latency is dominated by the fixed cost of
# launching each layer, so a network with many small layers is slow although it
# has few MACs. The early exit shows it: it skips about three quarters of the
# MACs but saves a smaller share of the time, because the exit path still pays
# for half of the layer calls. The capstone makes the point more sharply: it
# has about 18x fewer MACs than the teacher yet is slower at batch 1, because it
# runs more layers, and its depthwise convolutions do little arithmetic per
# byte they touch.
# ### END SOLUTION
