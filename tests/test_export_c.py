"""efflib.export_c: the int8 network as a standalone C program, equal to the integer reference
on every image and output, with no Python, torch or malloc in it."""

import re

import pytest
import torch
import torch.nn as nn

from efflib import data, export_c, models, train
from efflib.quant import integer


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EFFLAB_CC_CACHE", str(tmp_path_factory.mktemp("cc")))
        torch.manual_seed(0)
        loaders = data.digits(seed=0)
        model = models.digit_cnn(width=8)
        train.fit(model, loaders.train, epochs=1, progress=False)
        model.eval()
        int_model = integer.convert(model, torch.cat([x for x, _ in loaders.train]))
        program = export_c.export(int_model, (1, 8, 8))
        yield int_model, program, program.build(), torch.cat([x for x, _ in loaders.test])


def test_the_program_gives_the_references_integers_on_every_image(exported):
    int_model, program, exe, x = exported
    predictions, outputs = program.run(exe, x)
    assert torch.equal(outputs, int_model.forward_int(int_model.quantize_input(x)))
    assert torch.equal(predictions, int_model.predict(x))
    assert len(set(predictions.tolist())) > 1  # not a constant answer


def test_the_program_stands_alone(exported):
    _, program, exe, _ = exported
    code = program.header + program.source
    assert not re.search(r"\b(malloc|calloc|realloc|Py\w+)\s*\(", code)
    includes = set(re.findall(r"#include [<\"]([\w.]+)[>\"]", code))
    assert includes == {"stdint.h", "math.h", "stdio.h", "weights.h"}
    assert exe.stat().st_size < 200_000


def test_rounding_at_the_input_is_half_to_even_like_torch(exported):
    int_model, program, exe, _ = exported
    s, z = int_model.input.scale, int_model.input.zero_point
    halves = ((torch.arange(64, dtype=torch.float32) - 32 + 0.5) * s).reshape(1, 1, 8, 8)
    _, outputs = program.run(exe, halves)
    assert torch.equal(outputs, int_model.forward_int(int_model.quantize_input(halves)))
    assert int_model.quantize_input(torch.tensor([0.5 * s, 1.5 * s, 2.5 * s])).tolist() == \
        [z, z + 2, z + 2]


def test_unsupported_layers_are_named():
    conv = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.ReLU())
    int_model = integer.convert(conv, torch.randn(8, 4, 6, 6))
    with pytest.raises(ValueError, match="groups=1"):
        export_c.export(int_model, (4, 6, 6))
