"""efflib.devices: inputs follow the model to its device, except host-side bookkeeping.
No GPU reaches CI: a meta-device model stands in for CUDA where no data is needed, and
tests/fake_cuda.py where it is (packing reads the lengths)."""

import pytest
import torch
import torch.nn as nn
from fake_cuda import fake_cuda, on_cuda
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import efflib
from efflib.devices import model_device, to_model_device
from efflib.latency import measure_latency


class Packed(nn.Module):
    """An LSTM over a padded batch: pack_padded_sequence needs the lengths on the CPU."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 8, batch_first=True)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return pad_packed_sequence(out, batch_first=True)[0]


def test_what_moves_and_what_stays():
    model = nn.Linear(3, 3).to("meta")
    x, ids, lengths, mask = (torch.randn(2, 3), torch.zeros(2, 5, dtype=torch.long),
                             torch.tensor([5, 3]), torch.ones(2, 5, dtype=torch.bool))
    flags = torch.ones(2, dtype=torch.bool)
    moved = to_model_device(model, x, ids, lengths, mask, flags, 7, None)
    assert [v.device.type for v in moved[:5]] == ["meta", "meta", "cpu", "meta", "meta"]
    assert moved[5:] == (7, None)


def test_a_packed_sequence_moves_as_torch_moves_it():
    packed = pack_padded_sequence(torch.randn(2, 4, 6), torch.tensor([4, 2]), batch_first=True)
    (moved,) = to_model_device(nn.LSTM(6, 8).to("meta"), packed)
    assert moved.data.is_meta and moved.batch_sizes.device.type == "cpu"


@pytest.mark.filterwarnings("ignore:PyTorch was compiled without cuDNN")
def test_profile_keeps_sequence_lengths_on_the_cpu():
    """Issue 28: profile moved every input, lengths too, and pack_padded_sequence refuses
    lengths on CUDA."""
    x, lengths = torch.randn(2, 4, 6), torch.tensor([4, 2])
    cpu = efflib.profile(Packed(), x, lengths)
    with fake_cuda() as detector:
        model = Packed().cuda()
        with pytest.raises(RuntimeError, match="1D CPU int64"):
            model(x.cuda(), lengths.cuda())
        cuda = efflib.profile(model, x, lengths)
        assert on_cuda(model(x.cuda(), lengths)) and detector.tagged_ops > 10
    assert cuda.macs == cpu.macs == (4 + 2) * 4 * 8 * (6 + 8)  # 6 steps, 4 gates of 8


def test_latency_moves_its_one_input_whatever_it_is():
    model = nn.Embedding(10, 4).to("meta")
    lat = measure_latency(model, torch.arange(5), warmup=0, repeats=2)
    assert lat.device == "meta"


def test_a_model_on_two_devices_is_refused():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).to("meta"))
    with pytest.raises(ValueError, match="several devices"):
        model_device(model)
    assert model_device(nn.ReLU()) is None
