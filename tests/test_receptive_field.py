"""Receptive fields against an empirical one computed by autograd: which input pixels get a
non-zero gradient from the centre position of a layer's output."""
import pytest
import torch
from torch import nn

from archscope import trace
from archscope.models import get_entry, get_model, list_models

OPTIONS = {"vgg": {"ratio": 8}}


def geometric_copy(model):
    """The same geometry with gradients everywhere in the field: max-pools (whose gradient goes to
    one pixel per window) become average pools of the same kernel/stride/padding, and every
    parameter is positive, so with a positive input no ReLU is ever off."""
    for _, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         ceil_mode=child.ceil_mode))
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.full_like(p, 1.0 / fan_in))
    return model.double().eval()


def empirical_extent(model, layer_name, side):
    """(first, last) input row and column with a non-zero gradient from the centre output position."""
    layer = dict(model.named_modules())[layer_name]
    captured = {}
    handle = layer.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    x = torch.ones(1, 1, side, side, dtype=torch.float64, requires_grad=True)
    model(x)
    handle.remove()
    out = captured["out"]
    h, w = out.shape[2] // 2, out.shape[3] // 2
    out[0, :, h, w].sum().backward()
    nz = x.grad[0, 0].nonzero()
    return (h, w), (nz[:, 0].min().item(), nz[:, 0].max().item()), (nz[:, 1].min().item(), nz[:, 1].max().item())


@pytest.mark.parametrize("name", list_models())
def test_receptive_field_matches_autograd(name):
    side = get_entry(name).default_side
    t = trace(name, rf=True, depth=2, **OPTIONS.get(name, {}))
    from archscope.analysis.receptive import Field

    checked = 0
    for row in t.rows:
        shape = row.output_shape
        if row.kind != "module" or not row.rf or row.rf["whole_input"] or not (isinstance(shape, list) and len(shape) == 4) or shape[2] < 2:
            continue
        model = geometric_copy(get_model(name, **OPTIONS.get(name, {})))
        centre, rows, cols = empirical_extent(model, row.name, side)
        field = Field(tuple(row.rf["size"]), tuple(row.rf["jump"]), tuple(row.rf["start"]))
        (r0, r1), (c0, c1) = field.bounds(centre)
        clip = lambda a, b: (max(0, int(a)), min(side - 1, int(b)))  # noqa: E731
        assert rows == clip(r0, r1), (row.name, row.rf)
        assert cols == clip(c0, c1), (row.name, row.rf)
        checked += 1
    assert checked >= 3


def test_by_hand_dilation_and_branches():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 2, 3, padding=1)
            self.b = nn.Conv2d(1, 2, 5, padding=4, dilation=2)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)  # the larger field wins

    t = trace(Branches(), input_size=(1, 1, 32, 32), rf=True)
    assert t.row("a").rf["size"] == [3, 3] and t.row("b").rf["size"] == [9, 9]
    assert trace(nn.Sequential(Branches()), input_size=(1, 1, 32, 32), rf=True).rows[0].rf["size"] == [9, 9]
    whole = trace(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                  input_size=(1, 1, 9, 9), rf=True)
    assert whole.rows[1].rf["whole_input"] and whole.rows[1].rf["size"] == [3 + 3 * 2] * 2
