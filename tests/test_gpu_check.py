"""``make gpu-check`` on a machine without CUDA (``benchmarks/gpu_check.py --cpu``): the GPU check's own code at reduced
shapes, so it runs the day a card is lent."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_every_section_on_the_cpu():
    # through make, as a user runs it: with no CUDA the target passes --cpu
    proc = subprocess.run(["make", "gpu-check"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-3000:]
    for section in ("# gpu_check on CPU at reduced shapes", "## kit path: smoke-llama (nf4, gradient checkpointing on",
                    "## OFT rewinding", "## training throughput", "## decode", "## SVD", "## done in"):
        assert section in out, section
    trained = re.findall(r"^(\w+) +(\d+\.\d+), (\d+\.\d+) ", out, re.MULTILINE)  # method, loss at step 1 and 2
    assert [m for m, *_ in trained] == ["full", "lora", "dora", "pissa", "oft", "vera", "miss"]
    assert "the trained model restored exactly on exit: True" in out
    alphas = re.search(r"alpha 0 vs the base: max \|diff\| (\S+) .* alpha 1 vs the trained model: (\S+);", out)
    assert alphas and float(alphas[1]) < 0.02 and float(alphas[2]) < 0.02
    assert re.search(r"^lora-r8 +\d+", out, re.MULTILINE) and re.search(r"^oft-b32 +\d+", out, re.MULTILINE)
    assert len(re.findall(r"^ +[18] +\d+ +\d+\.\d+ +\d+$", out, re.MULTILINE)) == 4  # 2 batch sizes x 2 contexts
    assert "FAILED" not in out
