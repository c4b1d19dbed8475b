"""efflib.plots in a real kernel: each helper shows its figure once, as an image."""

import matplotlib
import nbformat
from nbclient import NotebookClient

from autograde.course import build
from efflib import plots

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend


def test_each_helper_shows_one_image():
    cells = [
        "import torch\nfrom efflib import plots",
        "plots.show_maps({'a': torch.eye(3), 'b': None})",
        "plots.growth_curves(lambda layers: len(layers), {'stack': [1, 2, 3]})",
        "plots.compare_curves({'relu': torch.relu}, {'relu': torch.relu})",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(build.ROOT)}}).execute()
    for cell in nb.cells[1:]:
        kinds = [o.output_type for o in cell.outputs]
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1 and "execute_result" not in kinds, (cell.source, kinds)


CLUSTER = ([10, 10.3, 10.6, 11, 20, 20.2], [80, 80.5, 81, 81.2, 90, 90.1],
           ["0.8 (87% exit)", "0.9 (75% exit)", "0.95", "0.99", "0.999", "1.01"])


def test_text_clashes_finds_overlaps_and_clipped_labels():
    """Lab 07's early-exit plot as it was: labels at one fixed offset overlapped."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    xs, ys, labels = CLUSTER
    ax.plot(xs, ys, "o-")
    for x, y, label in zip(xs, ys, labels, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.annotate("w16 d2 k5 e2", (20.2, 90.1), textcoords="offset points", xytext=(20, 0))
    fig.colorbar(plt.cm.ScalarMappable(), ax=ax, label="order trained")
    clashes = plots.text_clashes(fig)
    assert "'0.95' overlaps '0.99'" in clashes and "'0.999' overlaps '1.01'" in clashes
    assert "'w16 d2 k5 e2' runs into another panel (<colorbar>)" in clashes
    plt.close(fig)


def test_label_points_places_crowded_labels_apart_and_inside():
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    xs, ys, labels = CLUSTER
    ax.plot(xs, ys, "o-")
    ax.set(title="crowded", xlabel="x", ylabel="y")
    fig.tight_layout()
    placed = plots.label_points(ax, xs, ys, labels)
    assert [a.get_text() for a in placed] == labels
    assert plots.text_clashes(fig) == []
    plt.close(fig)
