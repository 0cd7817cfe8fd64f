# torch.linspace on PyTorch's AVX2 kernel, for the reference scripts beside it: a user's x86 build and Sd's tables
# take their linspaces from it, while the scripts themselves run on the default capability (libm's pow, log, tan).
import json
import os
import subprocess
import sys
import torch


def avx2_linspaces(ranges):
    # torch.linspace(start, end, n) in float32 for each (start, end, n), run in a child process on the AVX2 kernel.
    code = ("import json, sys, torch; print(json.dumps([torch.linspace(a, b, n).tolist() "
            "for a, b, n in json.loads(sys.stdin.read())]))")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(ranges), env=env, capture_output=True, text=True, check=True)
    return [torch.tensor(v, dtype=torch.float32) for v in json.loads(out.stdout)]
