"""Hugging Face transformers by name (``hf:``), and mixture-of-experts kernels: built from configs the
tests write (no network), checked against transformers' own num_parameters(), PyTorch's FlopCounterMode
on a real CPU forward with eager attention, and the decoder-only formula."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archscope import trace
from archscope.errors import UsageError

from conftest import one_line, run_cli

transformers = pytest.importorskip("transformers")

LLAMA = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1000)
MIXTRAL = dict(LLAMA, num_local_experts=4, num_experts_per_tok=2)


def cpu_model(model_type, head="AutoModel", **fields):
    """The same model built by transformers itself on CPU, with eager attention (the reference)."""
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(model_type, **fields)
    return getattr(transformers, head).from_config(config, attn_implementation="eager")


def reference_flops(model, train=False, **inputs):
    with FlopCounterMode(display=False) as counter:
        if train:
            model.train()
            out = model(**inputs)
            out[0].sum().backward()
        else:
            with torch.no_grad():
                model(**inputs)
    return counter


def test_a_decoder_matches_num_parameters_flop_counter_mode_and_the_decoder_formula():
    t = trace("hf:llama", **LLAMA)
    reference = cpu_model("llama", **LLAMA)
    ids = torch.randint(0, 1000, (1, 128))
    assert t.input_shape == {"input_ids": [1, 128], "attention_mask": [1, 128]}
    assert t.totals.params == reference.num_parameters()
    assert t.totals.flops == reference_flops(reference, input_ids=ids, attention_mask=torch.ones_like(ids)).get_total_flops()
    # 2·(N − N_embedding − N_norm)·T + 4·L·T²·d: each weight multiplies once per token; q·kᵀ and weights·v.
    T, d, L = 128, 64, 2
    n_embedding, n_norm = 1000 * d, (2 * L + 1) * d
    assert t.totals.flops == 2 * (t.totals.params - n_embedding - n_norm) * T + 4 * L * T * T * d
    assert "LlamaModel" in t.note and "default llama config" in t.note


def test_training_rows_of_a_transformer_partition_its_steps_flops_as_flop_counter_mode_counts_them():
    reference = cpu_model("gpt2", n_layer=2, n_embd=64, n_head=4, vocab_size=1000)
    ids = torch.zeros(1, 128, dtype=torch.long)
    counts = {name: sum(ops.values()) for name, ops in
              reference_flops(reference, train=True, input_ids=ids).get_flop_counts().items()}
    for depth in (1, 2, 4):
        t = trace("hf:gpt2", train=True, depth=depth, n_layer=2, n_embd=64, n_head=4, vocab_size=1000)
        assert sum(r.train_flops for r in t.rows) == t.totals.train_flops == counts["Global"]
        assert not any(r.name == "(outside any module)" for r in t.rows)
    t = trace("hf:gpt2", train=True, depth=4, n_layer=2, n_embd=64, n_head=4, vocab_size=1000)
    rows = {r.name: r.train_flops for r in t.rows}
    for leaf in ("h.0.attn.c_attn", "h.0.attn.c_proj", "h.1.mlp.c_fc", "h.1.mlp.c_proj"):
        assert rows[leaf] == counts[f"GPT2Model.{leaf}"], leaf
    # The attention's own matmuls (q·kᵀ, weights·v: 4·T²·d forward) and their backward (twice that) are its
    # (self) row. FlopCounterMode charges half of that backward to the enclosing block h.0 instead; the
    # block's total (its children included) is the same in both.
    assert rows["h.0.attn (self)"] == 3 * 4 * 128 * 128 * 64
    block = trace("hf:gpt2", train=True, depth=2, n_layer=2, n_embd=64, n_head=4, vocab_size=1000)
    assert {r.name: r.train_flops for r in block.rows}["h.0"] == counts["GPT2Model.h.0"]


def test_same_flops_on_meta_and_cpu_for_a_transformer_forward_and_training_step():
    meta = trace("hf:llama", train=True, **LLAMA)
    cpu = trace("hf:llama", train=True, device="cpu", **LLAMA)
    assert (meta.device, cpu.device) == ("meta", "cpu")
    assert (meta.totals.flops, meta.totals.train_flops) == (cpu.totals.flops, cpu.totals.train_flops)
    assert meta.totals.train_flops == 3 * meta.totals.flops


def test_mixture_of_experts_through_grouped_mm_traces_on_meta_and_counts_k_experts_per_token():
    # transformers >= 5 runs the experts through aten._grouped_mm, whose meta kernel refuses float32;
    # its count is checked against FlopCounterMode on transformers' eager expert loop (plain matmuls).
    t = trace("hf:mixtral", **MIXTRAL)
    assert t.device == "meta" and t.uncounted_ops == {}
    reference = cpu_model("mixtral", experts_implementation="eager", **MIXTRAL)
    ids = torch.randint(0, 1000, (1, 128))
    assert t.totals.flops == reference_flops(reference, input_ids=ids).get_total_flops()
    # Hand formula of the experts: 128 tokens x 2 experts, each a gated MLP of 3 d x i weights.
    dense = trace("hf:llama", **LLAMA).totals.flops
    router, experts = 2 * 2 * 128 * 64 * 4, 2 * 2 * 128 * 2 * 3 * 64 * 128
    assert t.totals.flops == dense - 2 * 2 * 128 * 3 * 64 * 128 + router + experts
    train = trace("hf:mixtral", train=True, depth=3, **MIXTRAL)
    assert train.totals.train_flops == 3 * t.totals.flops  # every product has two in the backward
    assert sum(r.train_flops for r in train.rows) == train.totals.train_flops
    assert train.totals.train_flops == trace("hf:mixtral", train=True, device="cpu", **MIXTRAL).totals.train_flops
    assert "routing" in t.note


def test_an_encoder_decoder_gets_decoder_ids_and_a_vision_model_pixels_at_its_image_size():
    t5 = dict(num_layers=1, num_decoder_layers=1, d_model=32, d_ff=64, num_heads=2, d_kv=16, vocab_size=500)
    t = trace("hf:t5", **t5)
    assert set(t.input_shape) == {"input_ids", "attention_mask", "decoder_input_ids"}
    ids = torch.zeros(1, 128, dtype=torch.long)
    reference = cpu_model("t5", **t5)
    assert t.totals.params == reference.num_parameters()
    assert t.totals.flops == reference_flops(reference, input_ids=ids, decoder_input_ids=ids).get_total_flops()

    vit = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2, image_size=64)
    t = trace("hf:vit", **vit)
    assert t.input_shape == {"pixel_values": [1, 3, 64, 64]}
    reference = cpu_model("vit", **vit)
    assert t.totals.flops == reference_flops(reference, pixel_values=torch.zeros(1, 3, 64, 64)).get_total_flops()


def test_an_input_shape_sets_the_sequence_length_of_every_text_input(tmp_path):
    t = trace("hf:llama", input_size="2x256:int64", **LLAMA)
    assert t.input_shape == {"input_ids": [2, 256], "attention_mask": [2, 256]}
    T, d, L = 256, 64, 2
    assert t.totals.flops == 2 * (2 * (t.totals.params - 1000 * d - 5 * d) * T + 4 * L * T * T * d)
    assert trace("hf:llama", batch=3, **LLAMA).input_shape["input_ids"] == [3, 128]


def test_a_local_config_folder_or_file_builds_the_head_its_architectures_name(tmp_path):
    config = transformers.AutoConfig.for_model("gpt2", n_layer=1, n_embd=32, n_head=2, vocab_size=300,
                                               architectures=["GPT2LMHeadModel"])
    config.save_pretrained(tmp_path)
    reference = transformers.GPT2LMHeadModel(config)
    for spec in (f"hf:{tmp_path}", f"hf:{tmp_path / 'config.json'}"):
        t = trace(spec)
        assert t.totals.params == reference.num_parameters()  # the LM head is tied to the embedding
        assert "GPT2LMHeadModel" in t.note and "architectures[0]" in t.note
    head = trace("hf:gpt2", head="sequence-classification", n_layer=1, n_embd=32, n_head=2, vocab_size=300)
    assert "GPT2ForSequenceClassification" in head.note
    assert head.totals.params == transformers.GPT2ForSequenceClassification(
        transformers.AutoConfig.for_model("gpt2", n_layer=1, n_embd=32, n_head=2, vocab_size=300)).num_parameters()


def test_hf_mistakes_are_one_line_and_code_from_a_repository_never_runs_unasked(tmp_path):
    with pytest.raises(UsageError, match="no field 'n_layers'; did you mean n_layer"):
        trace("hf:gpt2", n_layers=2)
    with pytest.raises(UsageError, match="did you mean .*hf:gpt2"):
        trace("hf:gpt3")
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "my_net", "auto_map": {
        "AutoConfig": "configuration_my_net.MyNetConfig"}}))
    (remote / "configuration_my_net.py").write_text("raise SystemExit('this code must not run')\n")
    for spec in (f"hf:{remote}", f"hf:{remote / 'config.json'}"):
        result = run_cli("params", spec)
        assert result.returncode == 2 and "trust_remote_code=True" in one_line(result.stderr)
    offline = run_cli("params", "hf:someone/some-model", env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2 and "hf:path/to/config.json" in one_line(offline.stderr)


def test_hf_on_the_command_line_keeps_json_clean_and_names_what_it_built():
    result = run_cli("flops", "hf:gpt2", "--arg", "n_layer=1", "--input", "1x64:int64", "-f", "json", timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["input_shape"] == {"input_ids": [1, 64], "attention_mask": [1, 64]}
    assert data["output_shape"] == {"last_hidden_state": [1, 64, 768]}
    assert "GPT2Model" in data["note"]


def test_a_model_that_reads_its_masks_values_traces_on_meta_with_the_values_archscope_made():
    # BART asks "is the attention mask all ones?" (.item() on it) to skip masking: on meta that value is
    # known, since archscope made the mask. The count is checked against FlopCounterMode on a real CPU run.
    bart = dict(encoder_layers=1, decoder_layers=1, d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64,
                encoder_attention_heads=2, decoder_attention_heads=2, vocab_size=500, max_position_embeddings=256)
    t = trace("hf:bart", **bart)
    assert t.device == "meta" and "read its input's values" in t.note
    ids = torch.zeros(1, 128, dtype=torch.long)
    reference = cpu_model("bart", **bart)
    assert t.totals.flops == reference_flops(reference, input_ids=ids, attention_mask=torch.ones_like(ids),
                                             decoder_input_ids=ids).get_total_flops()
    # memory runs its own meta training step: it follows the same values rather than failing on them
    from archscope import memory
    assert memory("hf:bart", **bart).params_bytes == 4 * reference.num_parameters()


@pytest.mark.parametrize("model_type, key, value", [
    ("qwen2", "head_dim", 32), ("phi3", "head_dim", 32), ("qwen3_moe", "head_dim", 32),
    ("deberta-v2", "position_buckets", 64),
])
def test_keys_the_modeling_code_reads_with_getattr_are_taken(model_type, key, value):
    """Keys absent from the default config but read by the modeling code change what transformers
    builds: archscope builds the same, with transformers' num_parameters() as the reference."""
    small = dict(num_hidden_layers=1, hidden_size=64, num_attention_heads=4, intermediate_size=128)
    if model_type == "qwen3_moe":
        small.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, num_key_value_heads=2)
    config = transformers.AutoConfig.for_model(model_type, **small, **{key: value})
    reference = transformers.AutoModel.from_config(config).num_parameters()
    from archscope.models import load_model

    # Built, not traced: transformers' own CPU forward of Qwen2 with head_dim != hidden/heads fails (5.24),
    # and archscope's trace fails the same way; what is asked here is that the key builds what it builds.
    built = load_model(f"hf:{model_type}", **small, **{key: value}).module
    assert sum(p.numel() for p in built.parameters()) == reference
    plain = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(model_type, **small))
    if key == "head_dim":
        assert plain.num_parameters() != reference  # the key really changes the model
    with pytest.raises(UsageError, match="did you mean"):
        trace(f"hf:{model_type}", **small, **{key + "x": value})  # a typo is still caught


def test_funnel_builds_its_base_model_where_automodel_fails():
    config = transformers.AutoConfig.for_model("funnel", block_sizes=[1, 1], d_model=64, n_head=2, d_head=32,
                                               d_inner=128, vocab_size=100)
    with pytest.raises(TypeError):
        transformers.AutoModel.from_config(config)  # transformers' own Auto class, on the default config
    t = trace("hf:funnel", block_sizes=[1, 1], d_model=64, n_head=2, d_head=32, d_inner=128, vocab_size=100)
    assert t.totals.params == transformers.FunnelModel(config).num_parameters()


def test_a_transformers_models_own_train_is_known_to_set_only_the_flags_and_a_lookalike_is_called():
    from torch import nn

    from archscope.analysis import modes

    model = cpu_model("llama", **LLAMA).train()
    model.layers[1].mlp.eval()
    before = [m.training for m in model.modules()]
    with modes.running_mode(model, False):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    train = type(model).train  # a transformers version whose train() is not in the table is called as ever
    known = (train.__module__, train.__qualname__, train.__code__.co_names) in modes._PLAIN_UNLESS
    assert modes._trains_plainly(model) == known
    model._use_kernels = True  # then its train() recasts kernels: it must be called, not skipped
    assert not modes._trains_plainly(model)

    calls = []

    class Lookalike(nn.Module):  # the same module and name, but its code reads another name
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    Lookalike.train.__module__, Lookalike.train.__qualname__ = "transformers.modeling_utils", "PreTrainedModel.train"
    net = Lookalike()
    with modes.running_mode(net, False):
        assert not net.fc.training
    assert calls == [False] and net.training and net.fc.training
