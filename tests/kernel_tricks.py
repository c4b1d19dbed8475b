"""Answers that reach past the kernel's refusals (issue 27), as code a student's notebook
holds: efflib's guarded reference taken out of its guard, efflib's twins under another
name, efflib's or torch's refusals switched off, a check's reference imported under the
answer's name.
Each kept its question's points while the functions a test reads came from the student's
kernel; tests/test_grading_clean_room.py grades them in place of the solution's
definitions, and each must lose exactly its question's points."""

import ast

OUT_OF_THE_GUARD = '''
_real_mult = next(c.cell_contents for c in efflib.quant.integer.quantize_multiplier.__closure__
                  if callable(c.cell_contents))


def quantized_multiplier(m):  # efflib's requantization, unwrapped
    return _real_mult(m)
'''

REFUSALS_EMPTIED = '''
import contextlib
import autograde.judging.watch as _watch
import efflib.quant.binary
_watch.blocked = lambda *topics: contextlib.nullcontext()  # the check blocks nothing


def binarize(w):  # efflib's own, its topic unblocked
    return efflib.quant.binary.binarize(w)


def ternarize(w):
    return efflib.quant.binary.ternarize(w)
'''

PRIVATE_TWIN = '''
import contextlib
import autograde.judging.watch as _watch
import efflib.quant.linear
_watch.blocked = lambda *topics: contextlib.nullcontext()  # the check blocks nothing


class _Ctx:
    def save_for_backward(self, *tensors):
        pass


def fake_quant_forward(x, scale, zero_point, qmin, qmax):  # efflib's private twin, unblocked
    return efflib.quant.linear._FakeQuantize.forward(_Ctx(), x, scale, zero_point, qmin, qmax,
                                                     None)
'''

TWIN_BY_NAME = '''
import contextlib
import autograde.judging.watch as _watch
_watch.blocked = lambda *topics: contextlib.nullcontext()  # the check blocks nothing
from efflib.quant.kmeans import centroid_grad as _cg


def centroid_gradient(weight_grad, indices, k):  # efflib's twin, under another name
    return _cg(weight_grad, indices, k)
'''

CHECK_REFERENCE = '''
from autograde.checks.lab07_beyond_compression import reference_front as pareto_front
'''

NUMBA_TWIN = '''
_bounds = numba.njit(loops._conv_bounds)  # efflib's loops, compiled under another name


@numba.njit
def conv_kernel(xp, w, out):
    _bounds(xp, w, out, 0)
'''

SWITCHED_OFF = '''
import contextlib
import autograde.judging.kernel_side as _ks
_ks.from_spec = lambda spec: contextlib.nullcontext()  # the check's refusals never start
'''

QUANTIZE_BY_TORCH = SWITCHED_OFF + '''

def linear_quantize(x, scale, zero_point, bits, signed):  # torch's quantizer consulted
    qmin, qmax = int_range(bits, signed)
    torch.quantize_per_tensor(x.float(), float(scale), int(zero_point), torch.qint32)
    return torch.clamp(torch.round(x / scale).long() + zero_point, qmin, qmax)
'''

KL_BY_TORCH = SWITCHED_OFF + '''

def distillation_loss(student_logits, teacher_logits, labels, T, alpha):  # torch's kl_div
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1),
                    F.log_softmax(teacher_logits / T, dim=1), reduction="batchmean",
                    log_target=True)
    return alpha * T * T * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
'''

# answer cell: (the names the trick defines in place of the solution's, its code)
LAB05 = {"q9_int_conv": (["quantized_multiplier"], OUT_OF_THE_GUARD),
         "q7_binary": (["binarize", "ternarize"], REFUSALS_EMPTIED),
         "q8_fake_quant": (["fake_quant_forward"], PRIVATE_TWIN),
         "q5_centroid_grad": (["centroid_gradient"], TWIN_BY_NAME),
         "q2_linear_quantize": (["linear_quantize"], QUANTIZE_BY_TORCH)}
LAB06 = {"q3_numba_kernel": (["conv_kernel"], NUMBA_TWIN)}
LAB07 = {"q5_pareto_front": (["pareto_front"], CHECK_REFERENCE),
         "q1_distillation_loss": (["distillation_loss"], KL_BY_TORCH)}


def without(source: str, names: list[str]) -> str:
    """`source` without its top-level statements that define one of `names`."""
    tree = ast.parse(source)
    lines = source.splitlines()
    for stmt in reversed(tree.body):
        bound = {stmt.name} if isinstance(stmt, ast.FunctionDef | ast.ClassDef) else {
            t.id for t in getattr(stmt, "targets", []) if isinstance(t, ast.Name)}
        if bound & set(names):
            start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
            del lines[start - 1:stmt.end_lineno]
    return "\n".join(lines)
