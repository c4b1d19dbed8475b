"""The laziest answers that passed, graded by the grading command: each loses exactly its
question's points. One notebook per lab, the solution with lazy answers in several
questions (each question's own mistakes, one by one, are in tests/test_checks_LAB.py)."""

import csv

import nbformat
import pytest
from lazy import LAB01, LAB02, LAB03, LAB04, LAB05, LAB06, LAB07, LAB08, LAB08_BORROWED

from autograde.course import build
from autograde.grading.grader import Grader
from autograde.grading.settings import Settings
from autograde.sandbox.policy import isolation_problem

pytestmark = [pytest.mark.course,
              pytest.mark.skipif(isolation_problem() is not None,
                                 reason=f"no isolation here: {isolation_problem()}")]

CORPUS = {  # lab: (appended code by answer cell, the test cells that must lose their points)
    "lab01_layers": (LAB01, {"q2_conv_size_test", "q5_weight_shape_test", "q6_einsum_test",
                             "q7_normalize_test", "q8_activations_test",
                             "q8_pooling_test"}),
    "lab02_metrics": (LAB02, {"q1_conv_params_test", "q3_conv_macs_test",
                              "q5_alexnet_table_test", "q7_hook_counter_test"}),
    "lab03_architectures": (LAB03, {"q1_vgg_stage_test", "q3_inverted_residual_test",
                                    "q4_channel_shuffle_test", "q8_edge_shufflenet_test"}),
    "lab04_pruning": (LAB04, {"q2_prune_model_test", "q6_sparse_bytes_test",
                              "q7_histogram_test"}),
    # Q6's pipeline clusters with the student's own Q4: a k-means from another start
    # stores other indices, so Q6 is lost with it
    "lab05_quantization": (LAB05, {"q1_formats_test", "q2_linear_quantize_test",
                                   "q4_kmeans_test", "q5_centroid_grad_test",
                                   "q6_huffman_test", "q8_fake_quant_test",
                                   "q9_int_conv_test", "q10_fold_bn_test",
                                   "q11_entropy_test"}),
    "lab06_loops": (LAB06, {"q3_numba_test", "q4_im2col_test", "q5_c_test",
                            "q6_int8_c_test"}),
    "lab07_beyond_compression": (LAB07, {"q2_student_test", "q3_early_exit_test",
                                         "q7_capstone_test"}),
    "lab08_porting": (LAB08, {"q1_node_costs_test", "q2_fold_batchnorm_test",
                              "q3_quantize_test", "q4_engine_conv_test",
                              "q5_exit_export_test", "q6_deployment_test"}),
    # the right numbers without the skill: a decomposed BatchNorm, PyTorch's int8 kernel
    # (refused as the call's watch travels to the kernel), a table with times typed in
    "lab08_porting, borrowed": (LAB08_BORROWED, {"q2_fold_batchnorm_test",
                                                 "q4_engine_conv_test",
                                                 "q6_deployment_test"}),
}


def lazy_notebook(lab: str, appended: dict[str, str]) -> nbformat.NotebookNode:
    nb = build.source_notebook(lab)
    found = set()
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in appended:
            cell.source += "\n" + appended[gid]
            found.add(gid)
    assert found == set(appended), set(appended) - found
    return nb


@pytest.mark.parametrize("lab", sorted(CORPUS))
def test_each_lazy_answer_loses_exactly_its_questions_points(lab, tmp_path):
    appended, lost = CORPUS[lab]
    lab = lab.split(",")[0]  # "lab08_porting, borrowed": a second notebook of the lab
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(lazy_notebook(lab, appended), incoming / "lazy.ipynb")
    grader = Grader(lab, tmp_path / "course", workers=1,
                    settings=Settings(cell_timeout=120))
    (result,) = grader.run(incoming, progress=False)
    assert result.status == "graded", result
    with open(grader.course / "reports" / lab / "grades.csv") as f:
        row = next(csv.DictReader(f))
    scores = {k: float(v) for k, v in row.items() if k.endswith("_test")}
    zero = {k for k, v in scores.items() if v == 0}
    assert zero == lost, f"{lab}: lost {sorted(zero)}, should lose {sorted(lost)}: {row['reason']}"
    assert all(v > 0 for k, v in scores.items() if k not in lost)
