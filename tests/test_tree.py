"""archscope's own module walk (models/tree.py) yields exactly what PyTorch's recursive generators do."""
import pytest
import torch
import torchvision
from torch import nn

from archscope.models import tree


def _shared_and_holes():
    """A module shared by two parents, a parameter tied between two layers, a None child, a ModuleDict."""
    shared = nn.Linear(4, 4)
    model = nn.Sequential(nn.Sequential(shared, nn.ReLU()), nn.ModuleDict({"b": shared, "c": nn.Linear(4, 2)}))
    model[1]["c"].weight = nn.Parameter(torch.zeros(2, 4))
    model.add_module("hole", None)
    head = nn.Linear(4, 4)
    head.weight = shared.weight  # tied
    model.add_module("head", head)
    model.register_parameter("own", nn.Parameter(torch.ones(3)))
    model[0].register_parameter("none", None)
    model.add_module("norm", nn.BatchNorm1d(4))
    model.register_buffer("scale", torch.ones(2))
    model[0].register_buffer("scale_too", model.scale)  # one buffer under two names: listed once
    model[0].register_buffer("empty", None)
    return model


def _hf_llama():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                      num_key_value_heads=2, num_hidden_layers=3, vocab_size=50,
                                      tie_word_embeddings=True)
    return transformers.LlamaForCausalLM(config)


MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(),
    "googlenet": lambda: torchvision.models.googlenet(init_weights=False, aux_logits=True),
    "vit_b_16": lambda: torchvision.models.vit_b_16(),
    "lstm": lambda: nn.LSTM(8, 16, 2),
    "shared and holes": _shared_and_holes,
    "hf llama, tied embeddings": _hf_llama,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_walk_is_pytorchs(name):
    with torch.device("meta"):
        model = MODELS[name]()
    for dup in (True, False):
        assert [(n, id(m)) for n, m in tree.named_modules(model, remove_duplicate=dup)] == \
            [(n, id(m)) for n, m in model.named_modules(remove_duplicate=dup)]
    assert [id(m) for m in tree.modules(model)] == [id(m) for m in model.modules()]
    for depth in (0, 1, 2):
        assert [(n, id(m)) for n, m in tree.named_modules(model, remove_duplicate=False, depth=depth)] == \
            [(n, id(m)) for n, m in model.named_modules(remove_duplicate=False) if (n.count(".") + 1 if n else 0) <= depth]
    assert [(n, id(p)) for n, p in tree.named_parameters(model)] == [(n, id(p)) for n, p in model.named_parameters()]
    assert [id(p) for p in tree.parameters(model)] == [id(p) for p in model.parameters()]
    assert [(n, id(b)) for n, b in tree.named_buffers(model)] == [(n, id(b)) for n, b in model.named_buffers()]
    assert [id(b) for b in tree.buffers(model)] == [id(b) for b in model.buffers()]
    walked = tree.named_modules(model)  # one walk handed to the table walks gives the same answers
    assert [(n, id(p)) for n, p in tree.named_parameters(model, walked)] == \
        [(n, id(p)) for n, p in model.named_parameters()]
    assert [(n, id(b)) for n, b in tree.named_buffers(model, walked)] == [(n, id(b)) for n, b in model.named_buffers()]


def test_a_module_with_its_own_walk_is_walked_by_it():
    class Hidden(nn.Module):
        """Hides its second child from named_modules, as some wrappers do."""

        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def named_modules(self, memo=None, prefix="", remove_duplicate=True):
            yield prefix, self
            yield from self.a.named_modules(memo, f"{prefix}.a" if prefix else "a", remove_duplicate)

    model = nn.Sequential(nn.ReLU(), Hidden())
    assert [n for n, _ in tree.named_modules(model)] == [n for n, _ in model.named_modules()] == ["", "0", "1", "1.a"]
    assert [id(p) for p in tree.parameters(model)] == [id(p) for p in model.parameters()]
    assert len(list(tree.parameters(model))) == 2  # b's weight and bias are hidden, as PyTorch's own walk says
