"""Writes the model files the README's "Open any model file" examples read (samples/files/).

    python samples/make_model_files.py

LeNet (this zoo's, random weights) as ONNX (PyTorch's exporter; needs onnx and onnxscript), as a
torch.export program and as TorchScript; a 2-layer GPT-2 built from a config, saved by
transformers as model.safetensors with its config.json.
"""
import os
import warnings

import torch

from archscope.models import get_model

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")


def main() -> None:
    os.makedirs(HERE, exist_ok=True)
    torch.manual_seed(0)
    lenet = get_model("lenet").eval()
    x = torch.zeros(1, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(lenet, (x,), os.path.join(HERE, "lenet.onnx"), dynamo=True, optimize=False, verbose=False,
                          external_data=False)
        torch.export.save(torch.export.export(lenet, (x,)), os.path.join(HERE, "lenet.pt2"))
        torch.jit.save(torch.jit.trace(lenet, x), os.path.join(HERE, "lenet.torchscript"))
    import transformers

    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128,
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(os.path.join(HERE, "gpt2-tiny"), safe_serialization=True)


if __name__ == "__main__":
    main()
