"""Start-up: a meta run of the seed's models does not import torch._dynamo, and leaves PyTorch as it was."""
import os
import subprocess
import sys
import textwrap

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def test_a_meta_run_does_not_import_dynamo_and_torch_compile_still_works_after_it():
    script = textwrap.dedent("""
        import sys, torch
        from archscope import check, memory, trace
        from archscope.analysis import no_dynamo
        assert "torch._dynamo" not in sys.modules
        flops = [trace(m).totals.flops for m in ("lenet", "alexnet", "vgg", "nin", "googlenet")]
        check("alexnet"); memory("alexnet", batch=2); trace("resnet18", train=True)
        assert "torch._dynamo" not in sys.modules, "a meta run imported torch._dynamo"
        assert not [f for f in no_dynamo._WRAPPED if "__dynamo_disable" in f.__dict__], "left PyTorch changed"
        compiled = torch.compile(lambda x: torch.relu(x) * 2 + 1, backend="eager")
        assert compiled(torch.tensor([-1.0, 3.0])).tolist() == [1.0, 7.0]
        assert "torch._dynamo" in sys.modules
        x = torch.empty(2, 3, device="meta")
        assert (torch.relu(x) + 1).shape == (2, 3)  # PyTorch's own references, as before
        print(flops)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    # The same counts as without the change: LeNet's by hand (2·(6·25·784 + 16·150·100 + 400·120 + 120·84
    # + 84·10)), AlexNet's as its golden file holds it
    flops = eval(done.stdout.strip().splitlines()[-1])
    assert flops[0] == 2 * (6 * 25 * 784 + 16 * 150 * 100 + 400 * 120 + 120 * 84 + 84 * 10)
    assert f"{flops[1]:,}" in open(os.path.join(GOLDEN, "alexnet.txt")).read()


def test_no_op_left_out_by_kind_has_a_pytorch_formula():
    """The counter answers ZERO for element-wise ops and views without importing
    torch.utils.flop_counter; that is only right if PyTorch has no formula for any of them."""
    import torch
    from torch.utils.flop_counter import flop_registry

    from archscope.analysis.counter import _element_wise
    from archscope.analysis.traffic import is_view

    for packet in flop_registry:
        if not isinstance(packet, torch._ops.OpOverloadPacket):
            continue  # higher-order ops (flex attention) never reach a dispatch mode as one op
        for name in packet.overloads():
            func = getattr(packet, name)
            assert not _element_wise(func) and not is_view(func), (packet, name)
    aten = torch.ops.aten
    assert _element_wise(aten.relu.default) and _element_wise(aten.add.Tensor) and is_view(aten.t.default)


def test_own_product_formulas_equal_flopcountermode():
    """convolution (grouped, strided, transposed, 1-3-D), mm, addmm, bmm, baddbmm: archscope's hand
    formulas against PyTorch's FlopCounterMode on real CPU ops."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from archscope.analysis.counter import FlopCounter

    def both(fn):
        with FlopCounterMode(display=False) as theirs:
            fn()
        ours = FlopCounter()
        with ours:
            fn()
        return ours.total, theirs.get_total_flops()

    x2, x1, x3 = torch.randn(2, 8, 11, 9), torch.randn(2, 8, 17), torch.randn(1, 4, 5, 6, 7)
    cases = [
        lambda: F.conv2d(x2, torch.randn(12, 4, 3, 2), stride=2, padding=1, groups=2),
        lambda: F.conv2d(x2, torch.randn(8, 1, 3, 3), groups=8, dilation=2),
        lambda: F.conv1d(x1, torch.randn(5, 8, 4), bias=torch.randn(5), stride=3),
        lambda: F.conv3d(x3, torch.randn(6, 4, 2, 3, 2)),
        lambda: F.conv_transpose2d(x2, torch.randn(8, 3, 3, 3), stride=2),
        lambda: torch.mm(torch.randn(7, 5), torch.randn(5, 3)),
        lambda: torch.addmm(torch.randn(3), torch.randn(7, 5), torch.randn(5, 3)),
        lambda: F.linear(torch.randn(4, 6, 5), torch.randn(9, 5), torch.randn(9)),
        lambda: torch.bmm(torch.randn(3, 4, 5), torch.randn(3, 5, 6)),
        lambda: torch.baddbmm(torch.randn(3, 4, 6), torch.randn(3, 4, 5), torch.randn(3, 5, 6)),
    ]
    for i, case in enumerate(cases):
        ours, theirs = both(case)
        assert ours == theirs and ours > 0, (i, ours, theirs)
    # In place, which FlopCounterMode leaves at 0: the hand formula, 2·m·k·n
    assert both(lambda: torch.randn(4, 5).addmm_(torch.randn(4, 3), torch.randn(3, 5)))[0] == 2 * 4 * 3 * 5


def test_counting_a_cnn_imports_neither_flop_counter_nor_sympy():
    """A meta trace of the seed's CNNs needs neither torch.utils.flop_counter (which imports Triton
    where it is installed) nor PyTorch's Python meta kernels (whose torch._check imports SymPy)."""
    script = textwrap.dedent("""
        import sys
        from archscope import check, trace
        for name in ("lenet", "alexnet", "vgg", "nin", "googlenet"):
            trace(name, device="meta")
            check(name)
        print(sorted(m for m in ("torch.utils.flop_counter", "triton", "sympy") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_meta_build_skips_weight_initialisation_and_a_cpu_build_keeps_it():
    """torch.nn.init's initialisers and a tensor's own in-place writes only write values: on meta they
    never reach PyTorch's kernels (each would cost a Python call and a dispatch, some a Python
    reference kernel), on CPU they run as PyTorch wrote them. A dispatch-level spy sees every aten op
    that really runs, whichever function modes sit above it."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from archscope.models.build import build_on, guarded

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    class TruncNormalInit(torch.nn.Module):  # timm's trunc_normal_ writes through Tensor methods
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(5, 3))
            with torch.no_grad():
                self.weight.uniform_(-1, 1).erfinv_().mul_(2.0).add_(0.5).clamp_(-2, 2)

    def make():
        return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Conv2d(3, 2, 3), TruncNormalInit())

    build = guarded("linear", {}, make)
    writes = {"uniform_", "normal_", "erfinv_", "mul_", "add_", "clamp_", "fill_", "zero_"}
    with Ops() as spy:
        model, _ = build_on("meta", build, "linear")
    assert writes.isdisjoint(spy.seen), spy.seen
    assert model[0].weight.device.type == "meta" and model[0].weight.shape == (4, 8)
    assert model[2].weight.shape == (5, 3) and model[2].weight.requires_grad
    with Ops() as spy:
        model, _ = build_on("cpu", build, "linear")
    assert spy.seen.count("uniform_") >= 5 and {"erfinv_", "clamp_"} <= set(spy.seen)
    assert model[0].weight.abs().sum() > 0  # really initialised


def test_a_meta_build_still_applies_what_changes_a_shape_or_a_flag():
    """What a meta build skips writes values only; a builder's in-place change of shape, of
    requires_grad, or a ones/zeros buffer must come out as PyTorch's own meta build makes it."""
    import torch

    from archscope.models.build import build_on, guarded

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.frozen = torch.nn.Parameter(torch.empty(4, 6))
            self.frozen.requires_grad_(False)
            grown = torch.empty(2, 3)
            grown.unsqueeze_(0).transpose_(1, 2)  # (1, 3, 2)
            self.register_buffer("grown", grown)
            self.register_buffer("resized", torch.empty(2).resize_(3, 5))
            self.register_buffer("ones", torch.ones(7, dtype=torch.bfloat16))
            self.register_buffer("zeros", torch.zeros_like(self.frozen, dtype=torch.float16))
            self.scale = torch.nn.Parameter(torch.ones(3, 3))
            self.filled = torch.full((2, 2), 3.0)

    def shapes(model):
        tensors = dict(model.named_parameters()) | dict(model.named_buffers()) | {"filled": model.filled}
        return {k: (tuple(t.shape), t.dtype, t.requires_grad, t.device.type) for k, t in tensors.items()}

    with torch.device("meta"):
        expected = shapes(Odd())
    model, _ = build_on("meta", guarded("odd", {}, Odd), "odd")
    assert shapes(model) == expected
    assert expected["grown"][0] == (1, 3, 2) and expected["resized"][0] == (3, 5)
    assert expected["frozen"][2] is False and expected["ones"][1] == torch.bfloat16
