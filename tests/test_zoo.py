import pytest
import torch
from torch import nn

from archscope.errors import UsageError
from archscope.models import get_entry, get_model, list_models, register_model


def conv_params(cin, cout, k):
    return cout * (cin * k * k + 1)


def linear_params(fin, fout):
    return fout * (fin + 1)


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_seed_models_and_the_rest_of_d2l():
    assert list_models() == ["alexnet", "densenet", "googlenet", "lenet", "lenet-bn", "nin", "resnet18", "vgg"]
    assert list_models("vgg*") == ["vgg"]
    assert list_models("*net") == ["alexnet", "densenet", "googlenet", "lenet"]
    assert get_entry("googlenet").default_side == 96
    assert get_entry("lenet").default_side == 28
    assert get_entry("alexnet").description


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(UsageError, match="did you mean 'googlenet'"):
        get_model("googlenett")


def test_unknown_builder_option_is_a_usage_error():
    with pytest.raises(UsageError, match="no option 'depth'"):
        get_model("vgg", depth=3)


def test_register_model_adds_an_entry():
    @register_model(input_size=8, description="tiny test model")
    def tiny_for_registry_test(in_channels: int = 1, num_classes: int = 10):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes))

    from archscope.models.registry import _REGISTRY

    try:
        assert list_models("tiny*") == ["tiny_for_registry_test"]
        assert count(get_model("tiny_for_registry_test")) == linear_params(64, 10)
        assert get_entry("tiny_for_registry_test").recipe.lr == 0.001  # the default recipe
    finally:
        del _REGISTRY["tiny_for_registry_test"]  # other tests list the zoo exactly


def test_registry_refuses_a_duplicate_unless_replacing():
    from archscope.models import Recipe, unregister_model

    def build(**kwargs):  # **kwargs builders are accepted and get every option
        return nn.Linear(kwargs.get("width", 4), 2)

    try:
        register_model(input_size=4, name="dup-test", recipe=Recipe(lr=0.5, batch_size=16))(build)
        with pytest.raises(UsageError, match="already registered"):
            register_model(input_size=4, name="dup-test")(build)
        with pytest.raises(UsageError, match="already registered"):
            register_model(input_size=4)(get_entry("lenet").builder)
        register_model(input_size=8, name="dup-test", replace=True, recipe=Recipe(lr=0.25))(build)
        assert get_entry("dup-test").default_side == 8
        assert count(get_model("dup-test", width=6)) == linear_params(6, 2)
        from archscope.models import recipe_for
        assert recipe_for("dup-test").lr == 0.25 and recipe_for("lenet").lr == 0.03
    finally:
        unregister_model("dup-test")


def test_lenet_params_by_formula():
    expected = (conv_params(1, 6, 5) + conv_params(6, 16, 5) + linear_params(400, 120)
                + linear_params(120, 84) + linear_params(84, 10))
    assert count(get_model("lenet")) == expected == 61706


def test_alexnet_params_by_formula_and_fc_layers_variant():
    convs = (conv_params(1, 96, 11) + conv_params(96, 256, 5) + conv_params(256, 384, 3)
             + conv_params(384, 384, 3) + conv_params(384, 256, 3))
    full = convs + linear_params(6400, 4096) + linear_params(4096, 4096) + linear_params(4096, 10)
    trimmed = convs + linear_params(6400, 4096) + linear_params(4096, 10)
    with torch.device("meta"):
        assert count(get_model("alexnet")) == full
        assert count(get_model("alexnet", fc_layers=1)) == trimmed


def test_vgg_ratio_8_widths():
    with torch.device("meta"):
        net = get_model("vgg", ratio=8)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 32, 64, 64, 64, 64]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(3136, 512), (512, 512), (512, 10)]
    assert [n for n, _ in net.named_children()] == [f"vgg_block_{i}" for i in range(1, 6)] + ["fc"]


def test_googlenet_inception_channels_match_the_paper():
    with torch.device("meta"):
        net = get_model("googlenet")
    inceptions = [m for m in net.modules() if type(m).__name__ == "Inception"]
    assert len(inceptions) == 9
    outs = [m.p1_1.out_channels + m.p2_2.out_channels + m.p3_2.out_channels + m.p4_2.out_channels for m in inceptions]
    assert outs == [256, 480, 512, 512, 512, 528, 832, 832, 1024]


def test_models_take_in_channels_and_num_classes():
    for name in list_models():
        size = get_entry(name).default_side
        with torch.device("meta"):
            net = get_model(name, in_channels=3, num_classes=7)
        assert net(torch.empty(2, 3, size, size, device="meta")).shape == (2, 7)


def test_zoo_models_flatten_safely_under_channels_last():
    torch.manual_seed(0)
    for name in list_models():
        model = get_model(name, **({"ratio": 8} if name == "vgg" else {})).eval()
        side = get_entry(name).default_side
        x = torch.randn(2, 1, side, side)
        with torch.no_grad():
            expected = model(x)
            got = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


# The seed's printed structures, as print(net) shows them: every conv/pool/linear with its
# kernel, stride and padding. A change to a zoo model that the seed did not make fails here.
SEED_PRINTS = {
    "alexnet": [
        "Conv2d(1, 96, kernel_size=(11, 11), stride=(4, 4))", "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)",
        "Conv2d(96, 256, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))", "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)",
        "Conv2d(256, 384, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", "Conv2d(384, 384, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
        "Conv2d(384, 256, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)",
        "Linear(in_features=6400, out_features=4096, bias=True)", "Linear(in_features=4096, out_features=4096, bias=True)",
        "Linear(in_features=4096, out_features=10, bias=True)",
    ],
    "lenet": [
        "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))", "AvgPool2d(kernel_size=2, stride=2, padding=0)",
        "Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))", "AvgPool2d(kernel_size=2, stride=2, padding=0)",
        "Linear(in_features=400, out_features=120, bias=True)", "Linear(in_features=120, out_features=84, bias=True)",
        "Linear(in_features=84, out_features=10, bias=True)",
    ],
    "nin": [
        "Conv2d(1, 96, kernel_size=(11, 11), stride=(4, 4))", "Conv2d(96, 96, kernel_size=(1, 1), stride=(1, 1))",
        "Conv2d(96, 96, kernel_size=(1, 1), stride=(1, 1))", "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)",
        "Conv2d(96, 256, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))", "Conv2d(256, 256, kernel_size=(1, 1), stride=(1, 1))",
        "Conv2d(256, 256, kernel_size=(1, 1), stride=(1, 1))", "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)",
        "Conv2d(256, 384, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", "Conv2d(384, 384, kernel_size=(1, 1), stride=(1, 1))",
        "Conv2d(384, 384, kernel_size=(1, 1), stride=(1, 1))", "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)",
        "Conv2d(384, 10, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", "Conv2d(10, 10, kernel_size=(1, 1), stride=(1, 1))",
        "Conv2d(10, 10, kernel_size=(1, 1), stride=(1, 1))", "AdaptiveAvgPool2d(output_size=(1, 1))",
    ],
}


def printed_layers(net):
    kinds = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
    return [repr(m) for m in net.modules() if isinstance(m, kinds)]


@pytest.mark.parametrize("name", sorted(SEED_PRINTS))
def test_structure_matches_the_seeds_print(name):
    with torch.device("meta"):
        assert printed_layers(get_model(name)) == SEED_PRINTS[name]


def test_vgg_and_googlenet_structure_matches_the_seed():
    with torch.device("meta"):
        vgg = get_model("vgg")
        google = get_model("googlenet")
    convs = [m for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert all(repr(c).endswith("kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))") for c in convs)
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(isinstance(m, nn.MaxPool2d) and m.kernel_size == 2 and m.stride == 2 for m in vgg.modules()) == 5
    assert printed_layers(google.b1) == ["Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3))",
                                         "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)"]


def test_alexnet_later_edition_is_an_option():
    with torch.device("meta"):
        net = get_model("alexnet", conv1_padding=1)
    assert repr(net.conv[0]) == "Conv2d(1, 96, kernel_size=(11, 11), stride=(4, 4), padding=(1, 1))"


def bn_params(c):
    return 2 * c


def test_lenet_bn_params_by_formula():
    expected = (conv_params(1, 6, 5) + bn_params(6) + conv_params(6, 16, 5) + bn_params(16)
                + linear_params(256, 120) + bn_params(120) + linear_params(120, 84) + bn_params(84)
                + linear_params(84, 10))
    assert count(get_model("lenet-bn")) == expected


def test_resnet18_params_by_formula():
    def residual(cin, cout, shortcut):
        p = conv_params(cin, cout, 3) + conv_params(cout, cout, 3) + 2 * bn_params(cout)
        return p + (conv_params(cin, cout, 1) if shortcut else 0)

    expected = conv_params(1, 64, 7) + bn_params(64)
    for cin, cout, first in ((64, 64, True), (64, 128, False), (128, 256, False), (256, 512, False)):
        expected += residual(cin, cout, not first) + residual(cout, cout, False)
    expected += linear_params(512, 10)
    with torch.device("meta"):
        assert count(get_model("resnet18")) == expected == 11178378


def test_densenet_params_by_formula():
    expected = conv_params(1, 64, 7) + bn_params(64)
    channels = 64
    for block in range(4):
        for i in range(4):
            c = channels + 32 * i
            expected += bn_params(c) + conv_params(c, 32, 3)
        channels += 4 * 32
        if block < 3:
            expected += bn_params(channels) + conv_params(channels, channels // 2, 1)
            channels //= 2
    assert channels == 248
    expected += bn_params(channels) + linear_params(channels, 10)
    with torch.device("meta"):
        assert count(get_model("densenet")) == expected


@pytest.mark.parametrize("arch, convs", [(11, 8), (13, 10), (16, 13), (19, 16)])
def test_vgg_arch(arch, convs):
    with torch.device("meta"):
        net = get_model("vgg", arch=arch, ratio=8)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == convs
    with pytest.raises(UsageError):
        from archscope import trace
        trace("vgg", arch=12)
