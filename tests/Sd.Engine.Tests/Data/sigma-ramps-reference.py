# Writes sigma-ramps-reference.json: the KL-optimal and Align Your Steps levels as ComfyUI computes them
# (comfy/samplers.py kl_optimal_scheduler in torch float32; comfy_extras/nodes_align_your_steps.py in numpy float64,
# then a float32 tensor). Run: ATEN_CPU_CAPABILITY=default python3 sigma-ramps-reference.py > sigma-ramps-reference.json
# (PyTorch 1.13, numpy 1.24; the default capability takes tan from libm, as .NET's MathF.Tan does).
import json
import math
import numpy as np
import torch


def kl_optimal_scheduler(n, sigma_min, sigma_max):
    # ComfyUI divides by n - 1 (NaN for one step); its forks take max(n - 1, 1).
    adj_idxs = torch.arange(n, dtype=torch.float).div_(max(n - 1, 1))
    sigmas = adj_idxs.new_zeros(n + 1)
    sigmas[:-1] = (adj_idxs * math.atan(sigma_min) + (1 - adj_idxs) * math.atan(sigma_max)).tan_()
    return sigmas


def loglinear_interp(t_steps, num_steps):
    xs = np.linspace(0, 1, len(t_steps))
    ys = np.log(t_steps[::-1])
    new_xs = np.linspace(0, 1, num_steps)
    new_ys = np.interp(new_xs, xs, ys)
    return np.exp(new_ys)[::-1].copy()


SD1 = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
       0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582]


def align_your_steps(steps):
    sigmas = SD1[:]
    if (steps + 1) != len(sigmas):
        sigmas = loglinear_interp(sigmas, steps + 1)
    sigmas[-1] = 0
    return [float(s) for s in sigmas], torch.FloatTensor(sigmas)


# SD's training sigmas' ends as diffusers has them in float32 (scaled_linear 0.00085..0.012 over 1000 steps, PyTorch's
# vectorized linspace, as Sd's table and the fixtures have it; the default capability's scalar linspace ends two ulps
# higher), then two other ranges. ComfyUI's own table is float64 (sigma_max 14.6146412), the same first level here.
ends = [(0.029167532920837402, 14.614645004272461), (0.1, 10.0), (0.002, 80.0)]
steps = [1, 2, 3, 7, 10, 11, 20, 30, 50, 150]
kl = [{"sigma_min": lo, "sigma_max": hi, "steps": n, "sigmas": [float(s) for s in kl_optimal_scheduler(n, lo, hi)]}
      for lo, hi in ends for n in steps]
ays = [{"steps": n, "float64": align_your_steps(n)[0], "sigmas": [float(s) for s in align_your_steps(n)[1]]}
       for n in [1, 2, 3, 5, 9, 10, 11, 12, 20, 30, 50, 100]]
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/sigma-ramps-reference.py: torch " + torch.__version__ + ", numpy " + np.__version__,
                  "kl_optimal": kl, "align_your_steps": ays}))
