"""A small CPU model's fused RNN layers run on meta (heavy_on_meta.py): the same counts as the
hand formula, and a model that reads, writes or catches a value from them gets the real run."""
import functools

import torch
from torch import nn

from archscope import trace
from archscope.analysis.run import forward
from archscope.inputs import Inputs

X, H, STEPS = 16, 32, 20


def lstm_macs(layers=1, x=X, h=H, steps=STEPS, directions=1):
    first = directions * steps * 4 * h * (x + h)  # four gates: W_ih·x and W_hh·h, every step
    rest = (layers - 1) * directions * steps * 4 * h * (directions * h + h)
    return first + rest


class Reads(nn.Module):
    """Takes a branch on the LSTM's output values: one more Linear when their sum is positive."""

    def __init__(self, how):
        super().__init__()
        self.lstm, self.extra, self.how = nn.LSTM(X, H), nn.Linear(H, H), how

    def forward(self, x):
        h = self.lstm(x)[0]
        if self.how == "item":
            positive = h.sum().item() > 0
        elif self.how == "tolist":
            positive = sum(h.sum(-1).flatten().tolist()) > 0
        else:  # a model that catches the failure and goes on with a default
            try:
                positive = bool(h.sum() > 0)
            except RuntimeError:
                positive = False
        return self.extra(h) if positive else h


def real_branch(model, x):
    with torch.no_grad():
        return bool(model.lstm(x)[0].sum() > 0)


def test_an_lstm_counts_the_hand_formula_with_its_layers_run_on_meta():
    for layers, bidirectional in [(1, False), (2, False), (2, True)]:
        model = nn.LSTM(X, H, num_layers=layers, bidirectional=bidirectional)
        expected = lstm_macs(layers, directions=2 if bidirectional else 1)
        assert trace(model, input_size=(STEPS, 1, X)).totals.macs == expected
        assert trace(model, input_size=(STEPS, 1, X), device="cpu").totals.macs == expected  # the real kernel
    args, kwargs = Inputs(shapes=[(STEPS, 1, X)], dtypes=[torch.float32]).make("cpu")
    out, _ = forward(nn.LSTM(X, H), args, kwargs, "cpu", shared=True, heavy_on_meta=True)
    assert out[0].device.type == "meta" and out[0].shape == (STEPS, 1, H)  # it never ran for real
    assert args[0].device.type == "cpu"


def seeds_of_both_branches(make):
    """Two seeds whose weights take the model's value branch each way on a zero input."""
    found = {}
    for seed in range(200):
        torch.manual_seed(seed)
        found.setdefault(real_branch(make(), torch.zeros(STEPS, 1, X)), seed)
        if len(found) == 2:
            return found
    raise AssertionError("no seed takes both branches")


def test_a_model_that_reads_or_catches_an_lstm_value_gets_the_real_run():
    for how in ("item", "tolist", "catches"):
        for positive, seed in seeds_of_both_branches(functools.partial(Reads, how)).items():
            torch.manual_seed(seed)
            model = Reads(how).eval()
            extra = STEPS * H * H if positive else 0
            assert trace(model, input_size=(STEPS, 1, X)).totals.macs == lstm_macs() + extra, (how, positive)


def test_a_model_that_writes_an_lstm_output_into_its_own_buffer_gets_the_real_run():
    class Cache(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(X, H)
            self.register_buffer("last", torch.zeros(STEPS, 1, H))

            self.extra = nn.Linear(H, H)

        def forward(self, x):
            self.last.copy_(self.lstm(x)[0])
            return self.extra(self.last) if self.last.sum() > 0 else self.last  # the buffer's values decide

    for positive, seed in seeds_of_both_branches(Cache).items():
        torch.manual_seed(seed)
        model = Cache()
        before = model.last.clone()
        extra = STEPS * H * H if positive else 0
        assert trace(model, input_size=(STEPS, 1, X)).totals.macs == lstm_macs() + extra, positive
        assert torch.equal(model.last, before)  # the user's buffer is as it came
