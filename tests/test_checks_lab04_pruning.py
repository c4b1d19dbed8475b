"""The Lab 04 checks accept the solution and reject wrong, lazy and hostile answers."""

import copy

import pytest
import torch
import torch.nn as nn
from conftest import judged_session

from autograde.checks import lab04_pruning as C
from autograde.checks.api import CheckFailed, NotAnswered
from autograde.judging.judge import judge_cell
from efflib import models, prune, size
from efflib.graded import GradedAnswerError


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_magnitude_mask(solution.magnitude_mask, hidden)
    C.check_prune_model(solution.prune_model, solution.apply_masks, hidden)
    C.check_sensitivity_scan(solution.sensitivity_scan, hidden)
    C.check_prune_channels(solution.prune_channels, hidden)
    C.check_sparse_bytes(solution.sparse_bytes, hidden)
    C.check_histogram(solution.histogram, hidden)


def test_solution_pruned_model(solution):
    C.check_pruned_model(solution.pruned_model)


def test_mask_mistakes(solution):
    def floor_count(w, s):
        k = int((1 - s) * w.numel())
        order = torch.argsort(w.abs().flatten(), descending=True, stable=True)
        m = torch.zeros(w.numel(), dtype=torch.bool)
        m[order[:k]] = True
        return m.view_as(w)
    with pytest.raises(CheckFailed, match="weights kept.*round"):
        C.check_magnitude_mask(floor_count)

    def higher_index_wins_ties(w, s):
        k, n = round((1 - s) * w.numel()), w.numel()
        flipped = torch.sort(w.abs().flatten().flip(0), descending=True, stable=True).indices
        m = torch.zeros(n, dtype=torch.bool)
        m[(n - 1 - flipped)[:k]] = True
        return m.view_as(w)
    with pytest.raises(CheckFailed, match="the lower index is kept"):
        C.check_magnitude_mask(higher_index_wins_ties)

    def smallest(w, s):
        return ~solution.magnitude_mask(w, 1 - s)
    with pytest.raises(CheckFailed):
        C.check_magnitude_mask(smallest)
    with pytest.raises(CheckFailed, match="bool tensor"):
        C.check_magnitude_mask(lambda w, s: solution.magnitude_mask(w, s).float())

    def no_validation(w, s):
        return solution.magnitude_mask(w, min(max(s, 0), 1))
    with pytest.raises(CheckFailed, match="ValueError"):
        C.check_magnitude_mask(no_validation)
    with pytest.raises(GradedAnswerError, match="magnitude_mask"):
        C.check_magnitude_mask(prune.magnitude_mask)


def test_masks_must_be_reapplied(solution):
    with pytest.raises(CheckFailed, match="nonzero again"):
        C.check_prune_model(solution.prune_model, lambda model, masks: None)

    def prunes_everything(model, sparsities):
        return solution.prune_model(model, {n: s for n in prune.prunable_layers(model)
                                         for s in [max(sparsities.values())]}) and {
            n: None for n in sparsities}
    with pytest.raises(CheckFailed):
        C.check_prune_model(prunes_everything, solution.apply_masks)

    def via_efflib(model, sparsities):
        return prune.Pruner(model, sparsities).masks
    with pytest.raises(GradedAnswerError):
        C.check_prune_model(via_efflib, solution.apply_masks)


def test_scan_mistakes(solution):
    def cumulative(model, score, sparsities, layers):
        out = {}
        for name in layers:  # never restores: later layers see earlier pruning
            w = prune.prunable_layers(model)[name].weight
            out[name] = []
            for s in sparsities:
                with torch.no_grad():
                    w.mul_(solution.magnitude_mask(w, s))
                out[name].append(score(model))
        return out
    with pytest.raises(CheckFailed):
        C.check_sensitivity_scan(cumulative)


def test_channel_mistakes(solution):
    def first_channels(conv, bn, nxt, keep):
        c, b, n = solution.prune_channels(conv, bn, nxt, keep)
        with torch.no_grad():
            c.weight.copy_(conv.weight[:keep])
        return c, b, n
    with pytest.raises(CheckFailed, match="pruned conv\\+BN output"):
        C.check_prune_channels(first_channels)

    def stale_bn(conv, bn, nxt, keep):
        c, _, n = solution.prune_channels(conv, bn, nxt, keep)
        b = copy.deepcopy(bn)
        b.num_features = keep
        b.running_mean, b.running_var = bn.running_mean[:keep], bn.running_var[:keep]
        b.weight = nn.Parameter(bn.weight.detach()[:keep].clone())
        b.bias = nn.Parameter(bn.bias.detach()[:keep].clone())
        return c, b, n
    with pytest.raises(CheckFailed):
        C.check_prune_channels(stale_bn)

    def modifies_in_place(conv, bn, nxt, keep):
        out = solution.prune_channels(conv, bn, nxt, keep)
        with torch.no_grad():
            conv.weight.zero_()
        return out
    with pytest.raises(CheckFailed, match="original layers were modified"):
        C.check_prune_channels(modifies_in_place)
    with pytest.raises(GradedAnswerError, match="prune_channels"):
        C.check_prune_channels(prune.prune_channels)


def test_size_mistakes(solution):
    def values_only(w, bits, fmt, index_bits=32):
        return (int(torch.count_nonzero(w)) * bits + 7) // 8 if fmt != "dense" else (
            w.numel() * bits + 7) // 8
    with pytest.raises(CheckFailed, match="index"):
        C.check_sparse_bytes(values_only)
    with pytest.raises(GradedAnswerError):
        C.check_sparse_bytes(lambda w, b, f, index_bits=32:
                             (size.tensor_bits(w, b, f, index_bits) + 7) // 8)


def test_a_cumulative_sensitivity_scan_fails(solution):
    """Pruning on top of the previous sparsity instead of from the original weights agrees
    with a correct scan only on increasing sparsities; the checks use other orders."""
    def cumulative(model, score, sparsities, layers):
        modules = prune.prunable_layers(model)
        result = {}
        for name in layers:
            weight = modules[name].weight
            saved = weight.detach().clone()
            scores = []
            for s in sparsities:
                with torch.no_grad():
                    weight.mul_(solution.magnitude_mask(weight.detach(), s))
                scores.append(score(model))
            with torch.no_grad():
                weight.copy_(saved)
            result[name] = scores
        return result
    for hidden in (False, True):
        with pytest.raises(CheckFailed, match="from its original weights"):
            C.check_sensitivity_scan(cumulative, hidden)


def test_pruned_model_rules():
    dense = models.digit_cnn(width=4)
    with pytest.raises(CheckFailed, match="at least 75%"):
        C.check_pruned_model(dense)
    empty = models.digit_cnn(width=4)  # pruned to 80% but never trained
    prune.Pruner(empty, {name: 0.8 for name in prune.prunable_layers(empty)})
    with pytest.raises(CheckFailed, match="needs at least 95%"):
        C.check_pruned_model(empty)
    with pytest.raises(CheckFailed, match="got str"):
        C.check_pruned_model("model")
    with pytest.raises(NotAnswered, match="still None"):  # the lab's own starting value
        C.check_pruned_model(None)


def _judged(check: str, **namespace) -> BaseException | None:
    source = (f"from autograde.checks.lab04_pruning import {check}\n"
              f"{check}({', '.join(namespace)})")
    return judge_cell(source, judged_session(namespace))[1]


def test_in_place_edits_come_back_from_the_kernel(solution):
    """The model goes to the kernel as data; what the student's function did to it there
    comes back, so a prune that does nothing or a scan that leaves layers pruned fails."""
    def forgets_to_prune(model, sparsities):
        masks = {}
        for name, s in sparsities.items():
            masks[name] = solution.magnitude_mask(
                prune.prunable_layers(model)[name].weight.detach(), s)
        return masks
    error = _judged("check_prune_model", prune_model=forgets_to_prune,
                    apply_masks=solution.apply_masks)
    assert "nonzero weights" in str(error), error

    def no_restore(model, score, sparsities, names):
        out = solution.sensitivity_scan(model, score, sparsities, names)
        with torch.no_grad():
            next(iter(prune.prunable_layers(model).values())).weight.zero_()
        return out
    assert "not restored" in str(_judged("check_sensitivity_scan", sensitivity_scan=no_restore))


def test_a_dense_model_cannot_hide_beside_a_pruned_one(solution):
    """check_pruned_model tests the layers the model has, rebuilt from their data: a forward
    swapped on the instance (to a dense model kept beside it) is not what is run."""
    dense = solution.dense
    fake = copy.deepcopy(dense)
    with torch.no_grad():
        for m in prune.prunable_layers(fake).values():
            m.weight.zero_()
    fake.forward = dense.forward  # runs the dense model in the kernel
    assert "needs at least 95%" in str(_judged("check_pruned_model", pruned_model=fake))
    fake.hidden = dense  # a dense copy kept beside the zeroed layers counts as layers
    assert "the goal is at least 75%" in str(_judged("check_pruned_model", pruned_model=fake))


def test_histogram_mistakes_fail(solution):
    def drops_hi(values, bins, lo, hi):
        v = values[(values >= lo) & (values < hi)].double()
        return torch.bincount(torch.floor((v - lo) * bins / (hi - lo)).long(), minlength=bins)

    def counts_outside(values, bins, lo, hi):
        v = values.double()
        idx = torch.floor((v - lo) * bins / (hi - lo)).long().clamp(0, bins - 1)
        return torch.bincount(idx, minlength=bins)
    for wrong in (drops_hi, counts_outside):
        with pytest.raises(CheckFailed, match="histogram"):
            C.check_histogram(wrong)
    with pytest.raises(CheckFailed, match="calls torch's histc"):
        C.check_histogram(lambda v, b, lo, hi: torch.histc(v, b, lo, hi).long())


def _swaps_parameters(solution):
    """prune_model that zeroes by swapping each weight for a new nn.Parameter: right values,
    but an optimizer made before it no longer trains those layers."""
    def prune_model(model, sparsities):
        layers = prune.prunable_layers(model)
        masks = {n: solution.magnitude_mask(layers[n].weight, s) for n, s in sparsities.items()}
        for name, mask in masks.items():
            layers[name].weight = nn.Parameter(layers[name].weight.detach() * mask)
        return masks
    return prune_model


def _freezes_kept_weights(solution):
    """prune_model that keeps the weights as pruned, and apply_masks that writes them back:
    the zeros stay, and nothing trains."""
    pruned = {}

    def prune_model(model, sparsities):
        masks = solution.prune_model(model, sparsities)
        layers = prune.prunable_layers(model)
        pruned.update({n: layers[n].weight.detach().clone() for n in masks})
        return masks

    def apply_masks(model, masks):
        layers = prune.prunable_layers(model)
        with torch.no_grad():
            for name in masks:
                layers[name].weight.copy_(pruned[name])
    return prune_model, apply_masks


def _zeroes_everything(model, masks):
    """apply_masks that zeroes every weight of a pruned layer, kept ones too."""
    layers = prune.prunable_layers(model)
    with torch.no_grad():
        for name in masks:
            layers[name].weight.zero_()


@pytest.mark.parametrize("judged", [False, True])
def test_pruning_must_leave_the_model_trainable(solution, judged):
    """An optimizer made before pruning still trains the kept weights: a new Parameter in
    place of the old one, masks that freeze what was kept or zero it, fail."""
    cases = [(_swaps_parameters(solution), solution.apply_masks, "replaced the parameter"),
             (*_freezes_kept_weights(solution), "have not changed"),
             (solution.prune_model, _zeroes_everything, "kept are zero")]
    for prune_fn, apply_fn, said in cases:
        if judged:
            error = _judged("check_prune_model", prune_model=prune_fn, apply_masks=apply_fn)
        else:
            with pytest.raises(CheckFailed) as info:
                C.check_prune_model(prune_fn, apply_fn)
            error = info.value
        assert said in str(error), error


@pytest.mark.parametrize("judged", [False, True])
def test_a_scan_that_restores_with_new_parameters_fails(solution, judged):
    """A scan that puts each layer back as a new nn.Parameter returns the right scores and
    values, but an optimizer made before the scan would no longer train those layers."""
    def scan(model, score, sparsities, names):
        layers = prune.prunable_layers(model)
        saved = {n: layers[n].weight.detach().clone() for n in names}
        out = solution.sensitivity_scan(model, score, sparsities, names)
        for n in names:
            layers[n].weight = nn.Parameter(saved[n])
        return out
    if judged:
        error = _judged("check_sensitivity_scan", sensitivity_scan=scan)
    else:
        with pytest.raises(CheckFailed) as info:
            C.check_sensitivity_scan(scan)
        error = info.value
    assert "replaced the parameter" in str(error), error
