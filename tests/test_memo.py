"""Repeated blocks replayed from their first run (memo.py): every number equals the run that runs
every block, on models nobody wrote the memo for; blocks that must not be replayed are not."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archscope.analysis.api import counted_run, trace


def _rows(t):
    return [(r.name, r.type, r.output_shape, r.input_shape, r.flops, r.params, r.calls, r.call_shapes, r.kind)
            for r in t.rows]


def _both(model, size=None, **kwargs):
    memoised = trace(model, size, depth=99, device="meta", **kwargs)
    plain = trace(model, size, depth=99, device="meta", memo=False, **kwargs)
    assert _rows(memoised) == _rows(plain)
    assert (memoised.totals, memoised.uncounted_ops, memoised.output_shape, memoised.note) == \
        (plain.totals, plain.uncounted_ops, plain.output_shape, plain.note)
    return memoised


def _replayed(model, size=None, **kwargs) -> int:
    _, _, run = counted_run(model, size, 1, "meta", None, kwargs, None, None)
    return run.recorder.replayed


TORCHVISION = ["tv:vit_b_16", "tv:resnet50", "tv:swin_t", "tv:efficientnet_b0", "tv:convnext_tiny", "tv:densenet121",
               "tv:regnet_y_400mf", "tv:maxvit_t", "googlenet", "vgg"]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_models_count_the_same_memoised(name):
    _both(name)


def test_repeated_blocks_are_replayed():
    assert _replayed("tv:vit_b_16") == 10  # 12 identical encoder blocks: two run, ten replayed
    assert _replayed("tv:resnet50") > 0


HF_TYPES = ["llama", "gpt2", "bert", "t5", "mistral", "qwen2", "gemma2", "mixtral", "whisper", "vit", "roberta",
            "distilbert", "bart", "opt", "phi", "falcon", "gpt_neox", "deit", "electra", "albert"]


@pytest.mark.parametrize("name", HF_TYPES)
def test_transformers_types_count_the_same_memoised(name):
    pytest.importorskip("transformers")
    _both(f"hf:{name}", num_hidden_layers=4)


def test_an_80_layer_llama_replays_78_layers_and_keeps_its_exact_count():
    pytest.importorskip("transformers")
    llama70 = dict(hidden_size=8192, intermediate_size=28672, num_attention_heads=64, num_key_value_heads=8,
                   vocab_size=32000, num_hidden_layers=80)
    t = _both("hf:llama", **llama70)
    assert t.totals.params == 68_714_504_192  # Llama-2-70B's published size
    assert _replayed("hf:llama", **llama70) == 78
    # whole decoder layers are replayed, not only their MLPs: the ops that run are those of 3 layers (2 run)
    assert _ops("hf:llama", **llama70) == _ops("hf:llama", **{**llama70, "num_hidden_layers": 3})


def _ops(model, size=None, **kwargs) -> int:
    """The ops a memoised trace dispatched (a replayed block dispatches none)."""
    from archscope.analysis.counter import FlopCounter

    seen = []

    class Counting(FlopCounter):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return super().__torch_dispatch__(func, types, args, kwargs)

    counted_run(model, size, 1, "meta", None, kwargs, None, None, counter=Counting())
    return len(seen)


class _Twins(nn.Module):
    def __init__(self, block, n=5):
        super().__init__()
        self.blocks = nn.ModuleList(block(i) for i in range(n))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


class _CountsItsCalls(nn.Module):
    """State that changes between calls: every second call of the model does two matmuls."""

    def __init__(self, i):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.seen = 0

    def forward(self, x):
        self.seen += 1
        return self.lin(self.lin(x)) if self.seen % 2 == 0 else self.lin(x)


class _BranchesOnItsIndex(nn.Module):
    """A plain attribute decides the work: the third block and later do an extra matmul."""

    def __init__(self, i):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.position = i

    def forward(self, x):
        return self.lin(self.lin(x)) if self.position >= 2 else self.lin(x)


class _Appends(nn.Module):
    """A list that grows on each call (a cache): state the key cannot see."""

    def __init__(self, i):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.kept = []

    def forward(self, x):
        self.kept.append(x)
        return self.lin(x) if len(self.kept) == 1 else x


class _ReturnsItsInput(nn.Module):
    def __init__(self, i):
        super().__init__()
        self.inner = nn.Identity()

    def forward(self, x):
        return self.inner(x)


MATMUL = 2 * 4 * 8 * 8  # one Linear(8, 8) on a (4, 8) input


def test_a_block_whose_state_changes_is_not_replayed():
    model = _Twins(_CountsItsCalls)
    t = _both(model, (4, 8))
    assert t.totals.flops == 5 * MATMUL  # each block is called once: one matmul each
    assert _replayed(_Twins(_CountsItsCalls), (4, 8)) == 0
    model(torch.zeros(4, 8))  # the user's model itself was not touched by the traces above
    assert [b.seen for b in model.blocks] == [1] * 5


def test_a_block_that_branches_on_an_attribute_is_keyed_by_it():
    t = _both(_Twins(_BranchesOnItsIndex), (4, 8))
    assert t.totals.flops == (2 + 3 * 2) * MATMUL


def test_a_block_whose_list_grows_is_not_replayed():
    shared = _Appends(0)
    model = nn.Sequential(*[shared] * 4)  # one module called four times
    t = _both(model, (4, 8))
    assert t.totals.flops == MATMUL  # the first call's matmul; later calls return their input
    assert _replayed(_Twins(_Appends), (4, 8)) == 0


def test_a_replayed_block_that_returns_its_input_returns_the_new_input():
    t = _both(_Twins(_ReturnsItsInput, n=6), (3, 5))
    assert t.output_shape == [3, 5]
    assert _replayed(_Twins(_ReturnsItsInput, n=6), (3, 5)) == 4


def test_a_block_with_a_users_hook_is_never_replayed():
    model = _Twins(lambda i: nn.Sequential(nn.Linear(8, 8), nn.ReLU()))
    calls = []
    model.blocks[3].register_forward_hook(lambda m, a, o: calls.append(1))
    assert _replayed(model, (4, 8)) == 2  # blocks 0, 1 run, 2 and 4 replayed; 3 has a hook, so it runs
    assert calls == [1]  # the hook saw its block's call
    _both(model, (4, 8))


class _ReachesIntoABlock(nn.Module):
    """Its forward calls a layer inside its first block directly, as well as through the block."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(5))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.blocks[4][0](x)


def test_a_layer_inside_a_replayed_block_called_from_outside_it_keeps_its_row():
    t = _both(_ReachesIntoABlock(), (4, 8))
    row = {r.name: r for r in t.rows}["blocks.4.0"]
    assert row.calls == 2 and row.flops == 2 * 2 * 4 * 8 * 8  # two calls of a 4x8 @ 8x8 product
    assert _replayed(_ReachesIntoABlock(), (4, 8)) == 0  # the forward ran again with every module hooked
    assert _replayed(_Twins(lambda i: nn.Sequential(nn.Linear(8, 8), nn.ReLU())), (4, 8)) == 3


class _SlotFlag(nn.Module):
    """Keeps the flag its forward branches on in a slot, outside its ``__dict__``."""

    __slots__ = ("twice",)

    def __init__(self, i):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        object.__setattr__(self, "twice", i == 4)

    def forward(self, x):
        y = self.fc(x)
        return self.fc(y) if self.twice else y


def test_a_block_that_branches_on_a_slot_is_keyed_by_it():
    t = _both(_Twins(_SlotFlag, n=6), (4, 8))
    assert t.totals.flops == 7 * 2 * 4 * 8 * 8  # six blocks, the fifth twice


def test_a_block_whose_layer_has_its_own_forward_patched_is_keyed_by_it():
    model = _Twins(lambda i: nn.Sequential(nn.Linear(8, 8), nn.ReLU()), n=6)
    layer = model.blocks[4][0]
    layer.forward = lambda x: nn.Linear.forward(layer, nn.Linear.forward(layer, x))  # this one works twice
    t = _both(model, (4, 8))
    assert t.totals.flops == 7 * 2 * 4 * 8 * 8


class _Scale(nn.Module):
    """A stateless module held in a plain dict, not as a child (what the ``kernels`` package's
    ``use_kernelized_func`` gives each attention layer of transformers 5.25: one new one a layer)."""

    def __init__(self, factor=2.0):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class _HoldsAHiddenModule(nn.Module):
    def __init__(self, i, factor=2.0):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.__dict__["_funcs"] = {"scale": _Scale(factor)}  # as kernels does: past Module.__setattr__

    def forward(self, x):
        return self._funcs["scale"](self.lin(x))


def test_a_block_holding_a_module_outside_its_children_is_keyed_by_that_module_s_structure():
    t = _both(_Twins(_HoldsAHiddenModule), (4, 8))
    assert t.totals.flops == 5 * MATMUL
    assert _replayed(_Twins(_HoldsAHiddenModule), (4, 8)) == 3  # one new module each, alike: 2 run, 3 replayed
    # a hidden module that differs (its factor: what its forward reads) keys its block apart
    differs = _Twins(lambda i: _HoldsAHiddenModule(i, factor=float(i)))
    _both(differs, (4, 8))
    assert _replayed(differs, (4, 8)) == 0
    out = trace(differs, (4, 8), device="cpu")  # and the values follow each block's own factor
    assert out.totals.flops == 5 * MATMUL


class _CountingScale(_Scale):
    def forward(self, x):
        self.calls = getattr(self, "calls", 0) + 1  # state a replay would not reproduce
        return x * self.factor


def test_a_block_whose_hidden_module_changes_on_a_call_is_not_replayed():
    shared = _CountingScale()

    class Shares(nn.Module):
        def __init__(self, i):
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.__dict__["_funcs"] = {"scale": shared}  # one hidden module for every block

        def forward(self, x):
            return self._funcs["scale"](self.lin(x))

    _both(_Twins(Shares), (4, 8))
    assert _replayed(_Twins(Shares), (4, 8)) == 0


class _KnowsItsModel(nn.Module):
    """A back-reference to the model, outside the children (as some libraries keep one)."""

    def __init__(self, i):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return self.lin(x)


def test_a_block_holding_a_reference_to_its_model_is_keyed_without_looping():
    model = _Twins(_KnowsItsModel)
    for block in model.blocks:
        block.__dict__["owner"] = model  # past Module.__setattr__: not a child
    t = _both(model, (4, 8))
    assert t.totals.flops == 5 * MATMUL
    assert _replayed(model, (4, 8)) == 3
