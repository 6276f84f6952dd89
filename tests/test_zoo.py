import pytest
import torch
from torch import nn

from archscope.errors import UsageError
from archscope.zoo import get_entry, get_model, list_models, register_model


def conv_params(cin, cout, k):
    return cout * (cin * k * k + 1)


def linear_params(fin, fout):
    return fout * (fin + 1)


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_five_seed_models():
    assert list_models() == ["alexnet", "googlenet", "lenet", "nin", "vgg"]
    assert list_models("vgg*") == ["vgg"]
    assert list_models("*net") == ["alexnet", "googlenet", "lenet"]
    assert get_entry("googlenet").input_size == 96
    assert get_entry("lenet").input_size == 28
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

    from archscope.zoo.registry import _REGISTRY

    try:
        assert list_models("tiny*") == ["tiny_for_registry_test"]
        assert count(get_model("tiny_for_registry_test")) == linear_params(64, 10)
    finally:
        del _REGISTRY["tiny_for_registry_test"]  # other tests list the zoo exactly


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
        size = get_entry(name).input_size
        with torch.device("meta"):
            net = get_model(name, in_channels=3, num_classes=7)
        assert net(torch.empty(2, 3, size, size, device="meta")).shape == (2, 7)


def test_zoo_models_flatten_safely_under_channels_last():
    torch.manual_seed(0)
    for name in list_models():
        model = get_model(name, **({"ratio": 8} if name == "vgg" else {})).eval()
        side = get_entry(name).input_size
        x = torch.randn(2, 1, side, side)
        with torch.no_grad():
            expected = model(x)
            got = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
