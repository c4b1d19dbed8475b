"""efflib.plots in a real kernel: each helper shows its figure once, as an image."""

import nbformat
from nbclient import NotebookClient

from autograde import build


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
