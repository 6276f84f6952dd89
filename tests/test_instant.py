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
