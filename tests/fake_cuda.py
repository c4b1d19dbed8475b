"""A device-mismatch detector: tensors moved to "cuda" stay on the CPU but carry a tag.

No GPU reaches this project's CI, so a lab's CUDA path is tried by pretending. Under
FakeCuda, `train.default_device()` says cuda; anything sent there (`.to`, `.cuda()`,
`device=` of a factory) is computed on the CPU but tagged, results of tagged inputs are
tagged, and every op that mixes tagged and untagged tensors raises the error CUDA would
raise, as does `.numpy()` of a tagged tensor. Zero-dimensional CPU tensors may mix, and
indexing a tagged tensor with a CPU index is allowed, as on CUDA.
"""

import contextlib
import time
from unittest import mock

import torch
import torch._dynamo  # noqa: F401 - its polyfills check Tensor._make_subclass, so load them unpatched
from torch.overrides import TorchFunctionMode

TAG = "_efflab_fake_cuda"
Tensor = torch.Tensor


def on_cuda(t) -> bool:
    return isinstance(t, Tensor) and getattr(t, TAG, False)


def _tag(value, flag: bool = True):
    if isinstance(value, Tensor):
        setattr(value, TAG, flag)
    elif isinstance(value, tuple | list):
        for v in value:
            _tag(v, flag)
    return value


def _is_cuda(device) -> bool:
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, torch.device) and device.type == "cuda"


def _is_device(v) -> bool:
    if isinstance(v, str):
        return v.split(":")[0] in ("cuda", "cpu")
    return isinstance(v, torch.device)


def _flat(values) -> list[Tensor]:
    out = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v)
        elif isinstance(v, tuple | list):
            out.extend(_flat(v))
    return out


_INDEXING = {Tensor.__getitem__, Tensor.__setitem__, Tensor.index_select, torch.index_select}
_BOOKKEEPING = {torch._has_compatible_shallow_copy_type}  # compares types, moves nothing
_COPIES = {Tensor.copy_}  # copy_ crosses devices; the destination stays where it is
_VF = torch._C._VariableFunctions
_ON_HOST = {  # argument positions that CUDA wants on the CPU: sequence lengths, batch sizes
    _VF._pack_padded_sequence: 1, _VF._pad_packed_sequence: 1,
    _VF.lstm: 1, _VF.gru: 1, _VF.rnn_tanh: 1, _VF.rnn_relu: 1,  # the packed overloads
}


class FakeCuda(TorchFunctionMode):
    """Tag tensors sent to cuda and raise on ops that mix tagged and untagged tensors."""

    def __init__(self):
        super().__init__()
        self.tagged_ops = 0  # calls that saw a tensor on "cuda": proof the path was taken

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if any(on_cuda(a) for a in args):
            self.tagged_ops += 1
        if func == Tensor.device.__get__:
            return torch.device("cuda", 0) if on_cuda(args[0]) else func(*args)
        if func == Tensor.is_cuda.__get__:
            return on_cuda(args[0])
        if func in (Tensor.numpy, Tensor.__array__) and on_cuda(args[0]):
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() "
                            "to copy the tensor to host memory first.")
        if func == Tensor.data.__set__:
            func(*args)
            _tag(args[0], on_cuda(args[1]))
            return None
        if func in (Tensor.cuda, Tensor.cpu):
            out = args[0].clone() if args[0].requires_grad is False else args[0].detach().clone()
            return _tag(out, func is Tensor.cuda)
        target = None
        if "device" in kwargs and kwargs["device"] is not None:
            target = kwargs["device"]
            if _is_cuda(target):
                kwargs["device"] = "cpu"
        args = list(args)
        if func is Tensor.to:
            for i, a in enumerate(args[1:], 1):
                if _is_device(a):
                    target = a
                    if _is_cuda(a):
                        args[i] = "cpu"
                elif isinstance(a, Tensor):
                    target = "cuda" if on_cuda(a) else "cpu"
        if target is not None:
            moving = func is Tensor.to and on_cuda(args[0]) != _is_cuda(target)
            out = func(*args, **kwargs)
            if moving and out is args[0]:
                out = out.clone()
            return _tag(out, _is_cuda(target))
        host = _ON_HOST.get(func)
        mixed = list(args)  # the arguments that must share the device
        if host is not None and len(args) > host and isinstance(args[host], Tensor) \
                and args[host].dim() == 1 and not args[host].is_floating_point():
            if on_cuda(args[host]):
                raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but "
                                   f"got 1D cuda:0 Long tensor ({func.__name__})")
            mixed[host] = None  # on the CPU, where it belongs
        tensors = _flat(mixed) + _flat(kwargs.values())
        tagged = [on_cuda(t) for t in tensors]
        if any(tagged) and not all(tagged) and func not in _INDEXING \
                and func not in _BOOKKEEPING | _COPIES:
            strays = [t for t, c in zip(tensors, tagged, strict=True) if not c and t.dim() > 0]
            if strays:
                raise RuntimeError(f"Expected all tensors to be on the same device, but found at "
                                   f"least two devices, cuda:0 and cpu! ({func.__name__})")
        if func in _COPIES:
            return _tag(func(*args, **kwargs), on_cuda(args[0]))
        out = func(*args, **kwargs)
        if any(tagged) and not isinstance(out, bool | int | float):
            _tag(out)
            if host is not None:  # the batch sizes these return stay on the CPU
                for o in _flat([out]):
                    _tag(o, o.is_floating_point() or o.dim() != 1)
        return out


class _Event:
    """torch.cuda.Event timed with the CPU clock."""

    def __init__(self, enable_timing: bool = False):
        self.t = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: "_Event") -> float:
        return (end.t - self.t) * 1e3


_make_subclass = Tensor._make_subclass


def _make_subclass_keeping_tag(cls, data, *args, **kwargs):
    """nn.Parameter(t) and its deepcopy: a new object over the same (tagged) data."""
    return _tag(_make_subclass(cls, data, *args, **kwargs), on_cuda(data))


@contextlib.contextmanager
def fake_cuda():
    """Run a block as if CUDA were present and the model went there."""
    with mock.patch("efflib.train.default_device", return_value=torch.device("cuda")), \
            mock.patch("torch.cuda.synchronize", lambda *a, **k: None), \
            mock.patch("torch.cuda.Event", _Event), \
            mock.patch.object(Tensor, "_make_subclass", _make_subclass_keeping_tag), \
            FakeCuda() as mode:
        yield mode
