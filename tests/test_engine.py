"""--engine torchinfo: torchinfo's own summary of the same model and input; totals agree."""
import re

import pytest
import torchinfo

from archscope import trace
from archscope.models import get_entry, get_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_param_totals_equal_torchinfos(name, cli):
    r = cli("summary", name, "--engine", "torchinfo")
    assert r.exit_code == 0, r.stderr
    shown = int(re.search(r"Total params: ([\d,]+)", r.stdout).group(1).replace(",", ""))
    assert shown == trace(name).totals.params
    side = get_entry(name).default_side
    info = torchinfo.summary(get_model(name), input_size=(1, 1, side, side), verbose=0)  # a CPU build of its own
    assert info.total_params == trace(name).totals.params


def test_mult_adds_differ_only_by_bias_for_a_cnn():
    # torchinfo counts a bias add as a MAC and archscope (like PyTorch's counter) does not: for
    # LeNet the difference is exactly the number of output elements of layers with a bias.
    info = torchinfo.summary(get_model("lenet"), input_size=(1, 1, 28, 28), verbose=0)
    bias_adds = 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84 + 10
    assert info.total_mult_adds == trace("lenet").totals.macs + bias_adds


def test_engine_only_for_summary(cli):
    assert cli("shapes", "lenet", "--engine", "torchinfo").exit_code == 2
    assert cli("summary", "lenet", "--engine", "fvcore").exit_code == 2
