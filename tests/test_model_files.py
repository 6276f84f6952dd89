"""Any model file as MODEL: ONNX, torch.export's .pt2, TorchScript, safetensors, a state_dict, a sharded index.

The references are outside archscope: torchvision's published params and GMACs (its model docs),
PyTorch's own module traced the usual way, transformers' ``num_parameters()``, and what
``load_state_dict(strict=True)`` refuses."""
import json
import os
import pickle
import warnings

import pytest
import torch
import torchvision

from archscope import trace
from archscope.analysis.weights import weights
from archscope.errors import UsageError
from archscope.models import get_model

# torchvision's model docs: params and GFLOPS (multiply-adds, as torchvision counts them)
PUBLISHED = {"resnet18": (11_689_512, 1.81), "mobilenet_v3_large": (5_483_032, 0.22), "vit_b_16": (86_567_656, 17.56)}


def _export_onnx(name: str, folder) -> str:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    path = str(folder / f"{name}.onnx")
    model = getattr(torchvision.models, name)().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # optimize=False keeps each BatchNorm a node of its own, as torchvision counts its parameters
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), path, dynamo=True, optimize=False, verbose=False)
    return path, model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return {name: _export_onnx(name, folder) for name in PUBLISHED}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_an_onnx_export_gives_torchvisions_published_params_and_gmacs(exported, name):
    path, model = exported[name]
    t = trace(path)
    params, gmacs = PUBLISHED[name]
    assert t.totals.params == params
    assert round(t.totals.macs / 1e9, 2) == gmacs
    assert t.totals.flops == trace(model, input_size=(1, 3, 224, 224), device="meta").totals.flops


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_an_onnx_exports_layers_have_the_pytorch_modules_output_shapes(exported, name):
    path, model = exported[name]
    for depth in (1, 2, 3):
        ours = {r.name: r.output_shape for r in trace(path, depth=depth).rows if r.kind in ("module", "container")}
        theirs = {r.name: r.output_shape for r in trace(model, input_size=(1, 3, 224, 224), depth=depth).rows
                  if r.kind in ("module", "container")}
        common = set(ours) & set(theirs)
        assert len(common) >= 0.8 * len(theirs), (depth, sorted(set(theirs) - set(ours))[:10])
        assert {n: ours[n] for n in common} == {n: theirs[n] for n in common}


def test_an_onnx_operator_archscope_does_not_convert_is_named_in_one_line(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["y"])],
                              "g", [x], [y])
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(UsageError, match="does not convert: Hardmax"):
        trace(str(path))


def test_without_the_onnx_extra_an_onnx_file_is_one_line_naming_it(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch")  # an ONNX ModelProto opens with its ir_version
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(UsageError, match=r"archscope\[onnx\]"):
        trace(str(path))


def test_a_torch_export_of_a_zoo_model_traces_as_the_zoo_model(tmp_path):
    model = get_model("nin").eval()
    path = tmp_path / "nin.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 224, 224),)), str(path))
    for depth in (1, 2):
        ours, zoo = trace(str(path), depth=depth), trace("nin", depth=depth)
        assert [(r.name, r.type, r.output_shape, r.params, r.flops) for r in ours.rows] == \
            [(r.name, r.type, r.output_shape, r.params, r.flops) for r in zoo.rows]
        assert ours.totals == zoo.totals


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("gpt2")
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder, model


def test_a_safetensors_file_lists_num_parameters_and_finds_its_tied_embedding(gpt2):
    folder, model = gpt2
    r = weights(str(folder / "model.safetensors"))
    assert r.params == model.num_parameters()
    assert r.match is not None and r.match.ok
    assert r.match.tied == [["lm_head.weight", "transformer.wte.weight"]]  # GPT-2 ties its head to wte
    assert sum(g.params for g in r.groups) == r.params


def test_a_state_dict_with_a_renamed_and_a_reshaped_tensor_is_reported_as_load_state_dict_would(gpt2, tmp_path, cli):
    folder, model = gpt2
    state = dict(model.state_dict())
    state["transformer.h.0.mlp.c_fc.weight_old"] = state.pop("transformer.h.0.mlp.c_fc.weight")
    state["transformer.ln_f.weight"] = torch.zeros(32)
    torch.save(state, tmp_path / "pytorch_model.bin")
    model.config.save_pretrained(str(tmp_path))
    r = weights(str(tmp_path / "pytorch_model.bin"))
    fresh = type(model)(model.config)
    shapes_fine = {k: v for k, v in state.items() if k != "transformer.ln_f.weight"}
    refused = fresh.load_state_dict(shapes_fine, strict=False)  # what PyTorch itself says, without strict's raise
    assert sorted(r.match.missing) == sorted(set(refused.missing_keys) - {"transformer.ln_f.weight"})
    assert sorted(r.match.unexpected) == sorted(refused.unexpected_keys)
    with pytest.raises(RuntimeError, match=r"size mismatch for transformer.ln_f.weight.*\[32\].*\[64\]"):
        fresh.load_state_dict(state, strict=False)
    assert r.match.mismatched == [{"name": "transformer.ln_f.weight", "file": [32], "model": [64]}]
    assert ["transformer.wte.weight", "lm_head.weight"] in r.duplicates  # torch.save kept the tie: one storage
    out = cli("weights", tmp_path / "pytorch_model.bin")
    assert out.exit_code == 1 and "transformer.h.0.mlp.c_fc.weight_old" in out.stdout and "32 in the file" in out.stdout


def test_a_sharded_index_reads_every_shard(gpt2, tmp_path):
    folder, model = gpt2
    state = model.state_dict()
    names = [n for n in state if n != "lm_head.weight"]
    half = len(names) // 2
    from safetensors.torch import save_file

    save_file({n: state[n].contiguous() for n in names[:half]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({n: state[n].contiguous() for n in names[half:]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {"metadata": {}, "weight_map": {n: f"model-0000{1 if i < half else 2}-of-00002.safetensors"
                                            for i, n in enumerate(names)}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    model.config.save_pretrained(str(tmp_path))
    r = weights(str(tmp_path / "model.safetensors.index.json"))
    assert r.params == model.num_parameters() and r.match.ok


def test_a_pickle_in_a_weights_file_never_runs(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"w": Evil()}, f, protocol=2)
    with pytest.raises(UsageError, match="weights_only=True"):
        weights(str(path))
    with pytest.raises(UsageError):
        trace(str(path))
    assert not marker.exists()


def test_a_file_of_another_kind_is_one_clear_line(tmp_path, cli):
    path = tmp_path / "notes.bin"
    path.write_text("hello, not a model\n")
    r = cli("shapes", path)
    assert r.exit_code == 2 and "is not a model file archscope reads" in r.stderr and "Traceback" not in r.stderr
    weights_only = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file({"a.weight": torch.zeros(2, 2)}, str(weights_only))
    r = cli("params", weights_only)
    assert r.exit_code == 2 and "weights only" in r.stderr and "archscope weights" in r.stderr


def test_graph_and_report_work_on_every_file_kind(exported, gpt2, tmp_path, cli):
    model = get_model("lenet").eval()
    script = tmp_path / "lenet.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), str(script))
    pt2 = tmp_path / "lenet.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 28, 28),)), str(pt2))
    folder, _ = gpt2
    files = [(exported["resnet18"][0], []), (pt2, []), (script, ["--input", "1x1x28x28"]),
             (folder / "model.safetensors", [])]
    for i, (path, extra) in enumerate(files):
        g = cli("graph", path, *extra, "-o", tmp_path / f"g{i}.dot")
        assert g.exit_code == 0, (path, g.stderr)
        assert "->" in (tmp_path / f"g{i}.dot").read_text()
        r = cli("report", path, *extra, "-o", tmp_path / f"r{i}.html")
        assert r.exit_code == 0, (path, r.stderr)
        assert 'id="archscope-data"' in (tmp_path / f"r{i}.html").read_text()
