"""The user's model and inputs leave every inspection exactly as they came (api.py's promise).

The model's forward counts its calls, caches its last input and appends to a history; it has
BatchNorm (running statistics a forward updates), a user's own forward hook, a lazy-free CPU
weight. After each API function, its parameters (same objects, same values, no .grad), buffers,
every module's ``__dict__`` (the attributes the forward writes, the hook tables), training
flags and devices, and the caller's input tensors (values, attributes) are what they were."""
import copy
import threading

import pytest
import torch
from torch import nn

import archscope


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)
        self.calls = 0
        self.last = None
        self.history = []

    def forward(self, x):
        self.calls += 1
        self.last = x
        self.history.append(tuple(x.shape))
        y = self.bn(self.conv(x)).relu().mean((2, 3))
        return self.fc(y)


def snapshot(model):
    return {
        "params": [(n, p, p.detach().clone(), p.device, p.requires_grad, p.grad) for n, p in model.named_parameters()],
        "buffers": [(n, b.detach().clone(), b.device) for n, b in model.named_buffers()],
        "dicts": {n: {k: (v if isinstance(v, (int, float, str, bool, type(None))) else copy.copy(v))
                      for k, v in m.__dict__.items() if not k.startswith("_")} for n, m in model.named_modules()},
        "hooks": {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks))
                  for n, m in model.named_modules()},
        "training": {n: m.training for n, m in model.named_modules()},
    }


def assert_same(model, before):
    after = snapshot(model)
    assert [n for n, *_ in after["params"]] == [n for n, *_ in before["params"]]
    for (n, p, value, device, grad_flag, grad), (_, p2, *_) in zip(before["params"], after["params"]):
        assert p2 is p, n  # the same Parameter object on the same module
        assert p2.device == device and p2.requires_grad == grad_flag and p2.grad is grad is None, n
        assert torch.equal(p2.detach(), value), n
    for (n, value, device), (n2, b2, device2) in zip(before["buffers"], after["buffers"]):
        assert n == n2 and device2 == device and torch.equal(b2, value), n
    assert model.calls == 0 and model.last is None and model.history == []
    assert after["hooks"] == before["hooks"]
    assert after["training"] == before["training"]
    for name in before["dicts"]:
        assert set(after["dicts"][name]) == set(before["dicts"][name]), name


def own_hook(module, args, output):  # the user's own hook: it must stay registered, and be the only one
    return None


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = Counting()
    m.train()  # BatchNorm would update its running statistics in a train-mode forward
    m.fc.register_forward_hook(own_hook)
    return m


CALLS = {
    "trace": lambda m, x: archscope.trace(m, (1, 3, 16, 16)),
    "trace on real data, rf and train": lambda m, x: archscope.trace(m, input_data=x, rf=True, train=True),
    "trace on cpu": lambda m, x: archscope.trace(m, input_data=x, device="cpu", train=True),
    "check": lambda m, x: archscope.check(m, (1, 3, 16, 16)),
    "memory": lambda m, x: archscope.memory(m, input_size=(2, 3, 16, 16), depth=1),
    "graph": lambda m, x: archscope.graph(m, input_data=x),
    "time": lambda m, x: archscope.time(m, input_size=(1, 3, 16, 16), hw="h100"),
    "time measured": lambda m, x: archscope.time(m, input_size=(1, 3, 16, 16), measure=True, repeats=1, train=True),
    "compare": lambda m, x: archscope.compare([m], input_size=(1, 3, 16, 16)),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_model_and_inputs_leave_as_they_came(model, call):
    x = torch.rand(2, 3, 16, 16)
    x_value = x.clone()
    before = snapshot(model)
    CALLS[call](model, x)
    assert_same(model, before)
    assert torch.equal(x, x_value) and x.__dict__ == {} and x.grad is None and not x.requires_grad


def test_report_and_torchinfo_engine_leave_it_too(model, tmp_path):
    from archscope.analysis.engines import torchinfo_summary

    before = snapshot(model)
    archscope.report(model, str(tmp_path / "page.html"), input_size=(1, 3, 16, 16))
    torchinfo_summary(model, input_size=(1, 3, 16, 16))
    assert_same(model, before)


def test_the_counter_is_still_right_on_the_stand_in(model):
    """The stand-in is the model: FLOPs equal FlopCounterMode's on a real forward of a copy."""
    from torch.utils.flop_counter import FlopCounterMode

    ref = copy.deepcopy(model).eval()
    with FlopCounterMode(display=False) as mode, torch.no_grad():
        ref(torch.rand(1, 3, 16, 16))
    assert archscope.trace(model, (1, 3, 16, 16)).totals.flops == mode.get_total_flops()


class Locked(nn.Module):
    """deepcopy refuses a lock: the structural copy stands in."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 5)
        self.lock = threading.Lock()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


def test_a_model_deepcopy_refuses_is_left_as_it_came():
    m = Locked()
    with pytest.raises(TypeError, match="pickle"):
        copy.deepcopy(m)
    params = list(m.parameters())
    t = archscope.trace(m, (1, 6))
    assert t.totals.params == sum(p.numel() for p in params) and t.output_shape == [1, 5]
    assert m.calls == 0 and list(m.parameters()) == params and m.fc._forward_hooks == {}


def test_the_stand_in_is_a_deep_copy_down_to_hook_handles_and_nested_state():
    """The stand-in is built module by module (faster than copy.deepcopy): it must copy as deepcopy does."""
    from archscope.models.build import stand_in

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lazy = nn.LazyLinear(4)  # its _initialize_hook is a RemovableHandle to its own hook table
            self.history = [[1, 2], {"seen": torch.zeros(2)}]
            self.pair = ([0], (1, [2]))  # tuples holding lists: new tuples, as deepcopy makes
            self.register_forward_hook(self.note)

        def note(self, module, args, out):
            self.history[0].append(len(self.history[0]))

        def forward(self, x):
            return self.lazy(x)

    model = Holder()
    copy_ = stand_in(model)
    with torch.no_grad():
        copy_(torch.zeros(2, 3))
    # The copy's lazy layer materialised and removed its own pre-hook; the user's is still lazy, hook in place.
    assert copy_.lazy.weight.shape == (4, 3) and not copy_.lazy._forward_pre_hooks
    assert isinstance(model.lazy.weight, nn.parameter.UninitializedParameter) and len(model.lazy._forward_pre_hooks) == 1
    # The copy's forward hook (a bound method) wrote the copy's own nested list, not the user's.
    assert copy_.history[0] == [1, 2, 2] and model.history[0] == [1, 2]
    assert copy_.history[1]["seen"] is not model.history[1]["seen"]
    copy_.pair[0].append(1)
    copy_.pair[1][1].append(3)
    assert model.pair == ([0], (1, [2])) and copy_.pair == ([0, 1], (1, [2, 3]))


def test_a_module_with_its_own_state_protocol_is_copied_through_it():
    """An LSTM has its own __getstate__/__setstate__ (its weight references are rebuilt, not copied): the
    stand-in follows them as deepcopy does, its parameters the user's own."""
    from archscope.models.build import stand_in

    model = nn.Sequential(nn.LSTM(3, 4, 2))
    copy_ = stand_in(model)
    reference = copy.deepcopy(model)
    lstm, mine = model[0], copy_[0]
    assert mine is not lstm and set(vars(mine)) == set(vars(reference[0]))
    assert [w is p for w, p in zip(mine._flat_weights, lstm._flat_weights)] == [True] * 8
    assert [r() is w for r, w in zip(mine._flat_weight_refs, mine._flat_weights)] == [True] * 8
    assert mine._flat_weights is not lstm._flat_weights and mine._all_weights == lstm._all_weights
    x = torch.randn(5, 1, 3)
    with torch.no_grad():
        assert torch.equal(copy_(x)[0][0], model(x)[0][0])

    class Odd(nn.Module):
        """A state that is not a dict: deepcopy's own way is left to it."""

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def __getstate__(self):
            return (dict(self.__dict__),)

        def __setstate__(self, state):
            self.__dict__.update(state[0])

    odd = Odd()
    copied = stand_in(odd)
    assert copied is not odd and copied.fc is not odd.fc and copied.fc.weight is odd.fc.weight
