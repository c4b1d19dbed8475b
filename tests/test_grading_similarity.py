"""grading.similarity: answers copied from efflib, the checks or another student are
flagged with the lines they share; answers written apart, starter code and short answers
are not."""

import csv
import inspect
import random

import nbformat
import pytest

from autograde.checks import lab07_beyond_compression
from autograde.course import build
from autograde.grading import similarity
from autograde.grading.grader import Grader
from autograde.grading.similarity import WINDOW, K
from autograde.sandbox.policy import isolation_problem


def starter(lab: str) -> nbformat.NotebookNode:
    return nbformat.read(build.LABS / lab / f"{lab}.ipynb", as_version=4)


def answered(lab: str, **answers: str) -> nbformat.NotebookNode:
    """The lab's solution with the named answer cells replaced."""
    nb = build.source_notebook(lab)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers.pop(gid)
    assert not answers, f"no answer cells {sorted(answers)}"
    return nb


# written apart from the solution and efflib, as two students who never met would
REWRITTEN_DIRECT = '''
def conv2d_direct(x, w, b, stride, padding, dilation):
    """Convolution by seven nested Python loops, zero padding by a bounds check."""
    batch, cin, height, width = (int(d) for d in x.shape)
    cout, _, kh, kw = (int(d) for d in w.shape)
    oh = 1 + (height + 2 * padding - dilation * (kh - 1) - 1) // stride
    ow = 1 + (width + 2 * padding - dilation * (kw - 1) - 1) // stride
    result = torch.zeros(batch, cout, oh, ow)
    for i in range(batch):
        for o in range(cout):
            for y in range(oh):
                for z in range(ow):
                    total = float(b[o])
                    for ci in range(cin):
                        for dy in range(kh):
                            for dx in range(kw):
                                row = y * stride - padding + dy * dilation
                                col = z * stride - padding + dx * dilation
                                inside = 0 <= row < height and 0 <= col < width
                                if inside:
                                    total += float(x[i, ci, row, col]) * float(w[o, ci, dy, dx])
                    result[i, o, y, z] = total
    return result
'''
REWRITTEN_MASK = '''
def magnitude_mask(weight, sparsity):
    """Bool mask keeping the round((1 - sparsity) * n) largest |w|, ties to the lower index."""
    if sparsity < 0 or sparsity > 1:
        raise ValueError("sparsity out of range")
    flat = weight.detach().flatten().abs()
    keep = int(round(flat.numel() * (1.0 - sparsity)))
    ranked = flat.argsort(descending=True, stable=True)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[ranked[:keep]] = True
    return mask.reshape(weight.shape)
'''


def reference(name: str) -> str:
    """The source of efflib's or a check's function `name` (a guarded one's own code)."""
    return next(r.source for r in similarity.references() if r.name == name)


def renamed(source: str, names: dict[str, str]) -> str:
    """`source` with every whole-word name in `names` renamed, as a copier would."""
    import re
    return re.sub(r"\b\w+\b", lambda m: names.get(m.group(), m.group()), source)


def test_renaming_comments_and_layout_change_no_token():
    a = "def f(x, y):\n    total = x + y  # sum\n    return torch.round(total)\n"
    b = "def g(p,q):\n\n    s = (p\n      + q)\n    return torch.round(s)"
    assert [t for t, _ in similarity.tokens(a)] == \
        [t for t, _ in similarity.tokens(b.replace("(p\n      + q)", "p + q"))]
    assert similarity.tokens("y = torch.round(x)")[-4:-1] != \
        similarity.tokens("y = torch.floor(x)")[-4:-1]  # the API called still counts


def test_a_shared_run_of_k_plus_window_tokens_always_shares_a_fingerprint():
    r = random.Random(0)
    words = ["x", "+", "y", "*", "(", ")", "torch.round", "1", ",", "-", "abs"]
    for _ in range(50):
        run = " ".join(r.choice(words) for _ in range(K + WINDOW - 1))
        a = " ".join(r.choice(words) for _ in range(r.randrange(40))) + f" ; {run} ; " + \
            " ".join(r.choice(words) for _ in range(r.randrange(40)))
        b = f"{run} ; " + " ".join(r.choice(words) for _ in range(r.randrange(60)))
        assert similarity.fingerprint("a", a).prints.keys() & \
            similarity.fingerprint("b", b).prints.keys()


@pytest.mark.parametrize("lab", build.lab_names())
def test_the_solutions_stay_below_the_threshold(lab):
    nb = build.source_notebook(lab)
    matches = similarity.compare({"solution": nb}, starter(lab))
    assert not matches, [(m.question, m.other, m.score) for m in matches]


def test_efflib_pasted_and_renamed_is_flagged_with_its_lines():
    pasted = renamed(reference("efflib.loops.conv2d_direct"),
                     {"acc": "total", "out": "result", "xl": "xs", "n_": "batch"})
    matches = similarity.compare({"copier": answered("lab06_loops", q1_direct=pasted)},
                                 starter("lab06_loops"))
    (m,) = [m for m in matches if m.question == "q1_direct"]
    assert (m.student, m.other) == ("copier", "efflib.loops.conv2d_direct")
    assert m.score >= 0.9 and len(m.lines) > 10 and len(m.other_lines) > 10


def test_a_checks_reference_pasted_is_flagged():
    pasted = inspect.getsource(lab07_beyond_compression.reference_early_exit).replace(
        "reference_early_exit", "early_exit")
    matches = similarity.compare(
        {"copier": answered("lab07_beyond_compression", q3_early_exit=pasted)},
        starter("lab07_beyond_compression"))
    assert [(m.question, m.other) for m in matches] == [
        ("q3_early_exit", "autograde.checks.lab07_beyond_compression.reference_early_exit")]


def test_two_students_with_one_answer_are_flagged_both_ways():
    nb = build.source_notebook("lab06_loops")
    matches = similarity.compare({"ann": nb, "ben": nb}, starter("lab06_loops"))
    pairs = {(m.student, m.other, m.question) for m in matches}
    assert {("ann", "ben", "q1_direct"), ("ben", "ann", "q1_direct"),
            ("ann", "ben", "q5_c_source")} <= pairs  # C in a string counts too
    assert all(m.score == 1.0 for m in matches)
    flags = similarity.flags(matches)
    assert "q1_direct (ben 100%)" in flags["ann"]


def test_answers_written_apart_are_not_flagged():
    for lab, answers in [("lab06_loops", {"q1_direct": REWRITTEN_DIRECT}),
                         ("lab04_pruning", {"q1_magnitude_mask": REWRITTEN_MASK})]:
        matches = similarity.compare({"solution": build.source_notebook(lab),
                                      "other": answered(lab, **answers)}, starter(lab))
        assert not [m for m in matches if m.question in answers], matches


def test_starter_code_and_short_answers_are_not_evidence():
    blank = starter("lab05_quantization")
    assert similarity.compare({"a": blank, "b": blank}, blank) == []
    short = answered("lab02_metrics", q2_model_size="def model_size(p, b):\n    return p*b/8\n")
    assert not [m for m in similarity.compare({"a": short, "b": short}, starter("lab02_metrics"))
                if m.question == "q2_model_size"]


def test_what_a_large_class_shares_is_idiom_but_efflib_is_not():
    pasted = reference("efflib.loops.conv2d_direct")
    nb = answered("lab06_loops", q1_direct=pasted)
    matches = similarity.compare({f"s{i}": nb for i in range(12)}, starter("lab06_loops"))
    q1 = [m for m in matches if m.question == "q1_direct"]
    assert {m.other for m in q1} == {"efflib.loops.conv2d_direct"} and len(q1) == 12
    assert not [m for m in matches if not m.other.startswith(("efflib", "autograde"))]


@pytest.mark.parametrize("source", [
    "def f(:\n  return", "x = " + "(" * 5000 + ")" * 5000, "%timeit f()\n!ls\n",
    "s = '''never closed\n", "\x00\x01 def", "x = 1\n" * 100_000])
def test_hostile_cells_are_compared_without_error(source):
    nb = answered("lab06_loops", q1_direct=source)
    similarity.compare({"a": nb, "b": nb}, starter("lab06_loops"))


def test_the_report_sets_both_sides_beside_each_other_and_escapes_them(tmp_path):
    hostile = REWRITTEN_DIRECT.replace('"""Convolution', '"""<script>alert(1)</script>')
    nb = answered("lab06_loops", q1_direct=hostile)
    matches = similarity.compare({"ann": nb, "ben": nb}, starter("lab06_loops"))
    page = similarity.write_report(tmp_path, "lab06_loops", matches,
                                   {"ann": nb, "ben": nb}).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "ann · q1_direct · ben · 100%" in page and "<mark>" in page
    assert "No answer reached" in similarity.write_report(
        tmp_path, "lab06_loops", [], {}).read_text()


@pytest.mark.course
@pytest.mark.skipif(isolation_problem() is not None,
                    reason=f"no isolation here: {isolation_problem()}")
def test_the_grader_reports_similar_answers_and_code_past_the_refusals(tmp_path):
    lab = "lab01_layers"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(build.source_notebook(lab), incoming / "ann.ipynb")
    nbformat.write(build.source_notebook(lab), incoming / "ben.ipynb")
    nbformat.write(starter(lab), incoming / "cat.ipynb")
    tamper = starter(lab)
    tamper.cells.insert(2, nbformat.v4.new_code_cell(
        "import autograde.judging.kernel_side as ks\nks.from_spec = lambda *a, **k: None"))
    nbformat.write(tamper, incoming / "dan.ipynb")
    grader = Grader(lab, tmp_path / "course", workers=2)
    grader.run(incoming, progress=False)
    reports = grader.course / "reports" / lab
    with open(reports / "grades.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert "q3_pad (ben 100%)" in rows["ann"]["similar_to"]
    assert "q3_pad (ann 100%)" in rows["ben"]["similar_to"]
    assert rows["cat"]["similar_to"] == rows["dan"]["similar_to"] == ""
    assert "cell 3 line 2: replaces part of a library" in rows["dan"]["flagged_code"]
    assert all(rows[s]["flagged_code"] == "" for s in ("ann", "ben", "cat"))
    page = (reports / "similarity.html").read_text()
    assert "ann · q3_pad · ben" in page and "ks.from_spec" in page
    assert "for review: 2 of 4 students with similar answers, 1 with code" in \
        (reports / "summary.txt").read_text()
