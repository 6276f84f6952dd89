"""torchvision and timm models by name, checked against numbers their maintainers published."""
import sys

import pytest

from archscope import trace
from archscope.errors import UsageError
from archscope.models import torchvision as torchvision_source

from models import BUILD_ARGS, classification_models, published


@pytest.mark.parametrize("name", classification_models())
def test_params_and_macs_equal_torchvisions_published_figures(name):
    t = trace(f"tv:{name}", **BUILD_ARGS.get(name, {}))
    num_params, gmacs = published(name, t.input_shape[-1])
    assert t.device == "meta"
    assert t.totals.params == num_params
    assert round(t.totals.macs / 1e9, 3) == pytest.approx(gmacs, abs=0.0011)  # torchvision rounds to 3 decimals


def test_there_are_many_classification_models():
    assert len(classification_models()) >= 80


def test_default_inputs_are_torchvisions():
    assert trace("tv:inception_v3").input_shape == [1, 3, 299, 299]
    assert trace("tv:resnet18").input_shape == [1, 3, 224, 224]
    assert trace("tv:efficientnet_b3").input_shape == [1, 3, 300, 300]
    assert trace("tv:r3d_18").input_shape == [1, 3, 16, 112, 112]


def test_segmentation_output_keeps_its_keys():
    t = trace("tv:lraspp_mobilenet_v3_large")
    assert t.output_shape == {"out": [1, 21, 520, 520]}


def test_builder_that_needs_real_tensors_is_built_on_cpu_with_a_note():
    t = trace("tv:regnet_x_400mf")
    assert "built on CPU" in t.note
    assert t.totals.params == torchvision_source.weights("regnet_x_400mf").meta["num_params"]


def test_unknown_names():
    with pytest.raises(UsageError, match="did you mean tv:resnet50"):
        trace("resnet50")
    with pytest.raises(UsageError, match="did you mean tv:resnet50"):
        trace("tv:resnet5O")


def test_timm_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'archscope\[timm\]'"):
        trace("timm:resnet18")


def test_timm_model_by_name():
    timm = pytest.importorskip("timm")
    t = trace("timm:resnet18")
    model = timm.create_model("resnet18")
    assert t.totals.params == sum(p.numel() for p in model.parameters())
    assert t.input_shape == [1, 3, 224, 224]
    assert t.totals.flops == trace("tv:resnet18").totals.flops  # the same architecture in both libraries


def test_list_external_models(cli):
    import json

    r = cli("list", "tv:resnet1*", "-f", "json")
    assert r.exit_code == 0
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"tv:resnet101", "tv:resnet152", "tv:resnet18"}
    assert rows["tv:resnet18"]["params"] == rows["tv:resnet18"]["published_params"] == 11689512
    r = cli("list", "tv:nothing*")
    assert r.exit_code == 2 and "no tv model matches" in r.stderr
