"""The labs are device-clean: every lab runs as if on CUDA (no GPU reaches CI), and the
mismatch detector that stands in for the GPU catches the bugs a GPU would."""

import copy
import sys
from pathlib import Path
from unittest import mock

import jupytext
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn as nn

from autograde.course import build
from efflib import plots

sys.path.insert(0, str(Path(__file__).parent))
from fake_cuda import fake_cuda, on_cuda  # noqa: E402 - a helper next to the tests

TRAINING_LABS = ["lab03_architectures", "lab04_pruning", "lab05_quantization", "lab06_loops"]


def run_lab(lab: str) -> dict:
    """Every code cell of the solution, test cells included, in one namespace."""
    matplotlib.use("Agg")
    nb = jupytext.read(build.source_path(lab), fmt="py:percent")
    env: dict = {"__name__": "__main__"}
    try:
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            exec(compile(cell.source, f"{lab}:cell{i}", "exec"), env)  # noqa: S102
    finally:
        matplotlib.pyplot.close("all")
    return env


def test_detector_behaves_like_cuda():
    with fake_cuda():
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).to("cuda")
        assert all(on_cuda(t) for t in model.state_dict(keep_vars=True).values())
        assert str(model[0].weight.device) == "cuda:0" and model[0].weight.is_cuda
        x = torch.randn(1, 1, 5, 5)
        with pytest.raises(RuntimeError, match="same device"):
            model(x)
        y = model(x.cuda())
        assert on_cuda(y) and not on_cuda(y.cpu()) and not on_cuda(y.to("cpu"))
        with pytest.raises(TypeError, match="numpy"):
            y.detach().numpy()
        y.detach().cpu().numpy()
        twin = copy.deepcopy(model)  # copies stay where the original is
        assert all(on_cuda(p) for p in twin.parameters())
        assert on_cuda(y * torch.tensor(2.0))  # a 0-dim CPU tensor may mix, as on CUDA
        assert on_cuda(torch.zeros(3, device=y.device))
        moved = x.to("cuda")
        assert on_cuda(moved) and not on_cuda(x)  # moving makes a new tensor


def test_detector_catches_inputs_left_on_the_cpu(monkeypatch, tmp_path):
    """Lab 04's bug before efflib moved inputs: its profile and latency cells fail."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    keep = lambda model, *inputs, **kw: inputs  # noqa: E731 - the old behaviour
    with mock.patch("efflib.profiler.to_model_device", keep), \
            mock.patch("efflib.latency.model_device", lambda model: None), fake_cuda(), \
            pytest.raises(RuntimeError, match="same device"):
        run_lab("lab04_pruning")


@pytest.fixture(scope="module", params=build.lab_names())
def ran(request, tmp_path_factory):
    """Run a lab's solution once as if on CUDA, auditing every figure it shows for text that
    overlaps or is cut off (efflib.plots.text_clashes); (lab, ops seen on "cuda", clashes)."""
    lab = request.param
    clashes: list[str] = []
    real_show = plt.show

    def audited_show(*args, **kwargs):
        for number in plt.get_fignums():
            fig = plt.figure(number)
            title = next((ax.get_title() for ax in fig.axes if ax.get_title()), "untitled")
            clashes.extend(f"{lab}, {title!r}: {c}" for c in plots.text_clashes(fig))
            plt.close(fig)  # as the notebook's inline backend does once it has shown it
        return real_show(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp(lab))
        mp.setenv("NBGRADER_EXECUTION", "autograde")  # the grader's short training
        mp.setattr(plt, "show", audited_show)
        with fake_cuda() as detector:
            run_lab(lab)
    return lab, detector.tagged_ops, clashes


@pytest.mark.course
def test_lab_runs_as_if_on_cuda(ran):
    lab, tagged_ops, _ = ran
    if lab in TRAINING_LABS:  # the detector really saw the model on "cuda"
        assert tagged_ops > 1000, tagged_ops


@pytest.mark.course
def test_lab_plots_have_no_overlapping_or_clipped_text(ran):
    """Issue 29: labels on labels, a legend on the points, a label past the edge."""
    _, _, clashes = ran
    assert not clashes, "\n".join(clashes)
