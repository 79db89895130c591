"""What a training run's start-up pays for: no TorchDynamo (seconds of imports) on the default CPU path."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_default_cpu_run_never_imports_torchdynamo(names_file, tmp_path):
    """PyTorch's optimizers import torch._dynamo on their first step, state_dict and zero_grad; the
    CPU's LeanAdamW avoids those wrappers, so a run (steps, checkpoints, final evaluation) and a
    resume from its checkpoint never pay for the import. With --no-fast-paths, PyTorch's AdamW
    imports it: the check below can see the import."""
    script = textwrap.dedent(f"""
        import sys
        from makemore.cli import main
        common = ["--model", "gru", "--n-embd", "8", "--n-hidden", "16", "--batch-size", "8", "--eval-interval", "3",
                  "--samples", "0", "--device", "cpu", "--threads", "1"]
        assert main(["train", {str(names_file)!r}, "--out", {str(tmp_path / "run")!r}, "--steps", "4", *common]) == 0
        assert main(["train", "--out", {str(tmp_path / "run")!r}, "--resume", "--steps", "6"]) == 0
        fast = "torch._dynamo" in sys.modules
        assert main(["train", {str(names_file)!r}, "--out", {str(tmp_path / "slow")!r}, "--steps", "2", "--no-fast-paths", *common]) == 0
        print(fast, "torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "True"]  # (after the runs' own lines)
