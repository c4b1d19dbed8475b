"""The laziest answers that passed, graded by the grading command: each loses exactly its
question's points. One notebook per lab, the solution with lazy answers in several
questions (each question's own mistakes, one by one, are in tests/test_checks_LAB.py)."""

import csv

import nbformat
import pytest

from autograde import build
from autograde.grading.grader import Grader
from autograde.sandbox.policy import isolation_problem

pytestmark = [pytest.mark.course,
              pytest.mark.skipif(isolation_problem() is not None,
                                 reason=f"no isolation here: {isolation_problem()}")]

# appended to an answer cell, each redefines one answer the lazy way
LAB05 = {
    "q1_formats": '''
def float_format(e, m):  # looked up, not computed from e and m
    known = {(8, 23): torch.float32, (5, 10): torch.float16, (8, 7): torch.bfloat16,
             (11, 52): torch.float64, (5, 2): torch.float8_e5m2, (4, 3): torch.float8_e4m3fn}
    info = torch.finfo(known.get((e, m), torch.float32))
    return info.max, info.eps, info.tiny
''',
    "q2_linear_quantize": '''
def scale_zero_point(x, bits, signed, symmetric):  # the range is never widened to hold 0
    lo, hi = int_range(bits, signed)
    mn, mx = float(x.min()), float(x.max())
    if symmetric:
        s = max(abs(mn), abs(mx)) / ((hi - lo) / 2)
        return s, 0 if signed else (lo + hi + 1) // 2
    s = (mx - mn) / (hi - lo)
    return s, int(max(lo, min(hi, round(lo - mn / s))))
''',
    "q4_kmeans": '''
def kmeans_quantize(w, bits):  # starts from quantiles, not from the even grid
    x, k = w.detach().reshape(-1).double(), 2**bits
    c = torch.quantile(x, torch.linspace(0, 1, k + 2, dtype=torch.float64)[1:-1])
    labels = torch.argmin((x[:, None] - c[None, :]).abs(), dim=1)
    while True:
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        new = torch.argmin((x[:, None] - c[None, :]).abs(), dim=1)
        if torch.equal(new, labels):
            return c.float(), labels.reshape(w.shape)
        labels = new
''',
    "q5_centroid_grad": '''
from efflib.quant.kmeans import centroid_grad as centroid_gradient  # efflib's copy
''',
    "q8_fake_quant": '''
def fake_quant_forward(x, scale, zp, qmin, qmax):  # halves rounded away from zero
    q = torch.sign(x / scale) * torch.floor(torch.abs(x / scale) + 0.5) + zp
    return (torch.clamp(q, qmin, qmax) - zp) * scale
''',
    "q9_int_conv": '''
def quantized_multiplier(m):  # halves rounded away from zero
    mantissa, exponent = math.frexp(m)
    m0 = math.floor(mantissa * 2**31 + 0.5)
    if m0 == 2**31:
        m0, exponent = m0 // 2, exponent + 1
    return m0, -exponent
''',
}

LAB06 = {
    "q3_numba": '''
@numba.njit
def conv_kernel(xp, w, out):  # compiled, and empty
    pass


def conv2d_numba(x, w):  # NumPy's sliding windows do the work
    xp = np.pad(x.detach().float().numpy(), ((0, 0), (1, 1), (1, 1)))
    view = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))
    return torch.from_numpy(np.einsum("chwrs,mcrs->mhw", view, w.float().numpy()).copy())
''',
    "q4_im2col": '''
def conv2d_im2col(x, w, b, stride, padding):  # shift and add: no column matrix, no product
    xp = torch.zeros(x.shape[0], x.shape[1] + 2 * padding, x.shape[2] + 2 * padding)
    xp[:, padding:padding + x.shape[1], padding:padding + x.shape[2]] = x
    k = w.shape[-1]
    P, Q = (xp.shape[1] - k) // stride + 1, (xp.shape[2] - k) // stride + 1
    out = b.reshape(-1, 1, 1).expand(w.shape[0], P, Q).clone()
    for r in range(k):
        for s in range(k):
            patch = xp[:, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride]
            out = out + (w[:, :, r, s][:, :, None, None] * patch[None]).sum(1)
    return out
''',
    "q5_c_source": '''
C_CONV = "void conv2d(void) { }"  # C in name only: the wrapper below computes
''',
    "q5_c": '''
def conv2d_c(x, w, b, padding, source=None):
    if source is not None:
        lib = cc.load(source, name="conv")
        x, w, b = (t.detach().cpu().float().contiguous() for t in (x, w, b))
        C, H, W = x.shape
        M, _, R, S = w.shape
        y = torch.empty(M, H + 2 * padding - R + 1, W + 2 * padding - S + 1)
        lib.conv2d(cc.pointer(x), cc.pointer(w), cc.pointer(b), cc.pointer(y),
                   C, H, W, M, R, S, padding)
        return y
    return F.conv2d(x[None], w, b, padding=padding)[0]
''',
    "q6_int8_c_source": '''
C_INT8_CONV = C_INT8_CONV.replace(  # the product in int32: undefined once it overflows
    "((int64_t)acc * m0[m] + ((int64_t)1 << (total - 1))) >> total",
    "((int64_t)(acc * m0[m]) + ((int64_t)1 << (total - 1))) >> total")
''',
}

LAB07 = {
    "q2_student": '''
student = make_student(0)  # hard labels on every training image: accurate, not distilled
train.fit(student, loaders.train, None, epochs=10, lr=1e-2)
''',
    "q7_capstone": '''
final_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
train.fit(final_model, loaders.train, None, epochs=10, fast_epochs=10)  # a float MLP
final_model = final_model.cpu().eval()
final_bits = 32
''',
}

CORPUS = {  # lab: (appended code by answer cell, the test cells that must lose their points)
    # Q6's pipeline clusters with the student's own Q4: a k-means from another start
    # stores other indices, so Q6 is lost with it
    "lab05_quantization": (LAB05, {"q1_formats_test", "q2_linear_quantize_test",
                                   "q4_kmeans_test", "q5_centroid_grad_test",
                                   "q6_huffman_test", "q8_fake_quant_test",
                                   "q9_int_conv_test"}),
    "lab06_loops": (LAB06, {"q3_numba_test", "q4_im2col_test", "q5_c_test",
                            "q6_int8_c_test"}),
    "lab07_beyond_compression": (LAB07, {"q2_student_test", "q7_capstone_test"}),
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
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(lazy_notebook(lab, appended), incoming / "lazy.ipynb")
    grader = Grader(lab, tmp_path / "course", workers=1, cell_timeout=120)
    (result,) = grader.run(incoming, progress=False)
    assert result.status == "graded", result
    with open(grader.course / "reports" / lab / "grades.csv") as f:
        row = next(csv.DictReader(f))
    scores = {k: float(v) for k, v in row.items() if k.endswith("_test")}
    zero = {k for k, v in scores.items() if v == 0}
    assert zero == lost, f"{lab}: lost {sorted(zero)}, should lose {sorted(lost)}: {row['reason']}"
    assert all(v > 0 for k, v in scores.items() if k not in lost)
