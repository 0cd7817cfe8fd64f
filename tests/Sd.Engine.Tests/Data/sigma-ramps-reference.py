# Writes sigma-ramps-reference.json: the KL-optimal and Align Your Steps levels as ComfyUI computes them
# (comfy/samplers.py kl_optimal_scheduler in torch float32; comfy_extras/nodes_align_your_steps.py in numpy float64,
# then a float32 tensor), and A1111's Simple, Normal and SGM Uniform schedule types (modules/sd_schedulers.py 1.10 on
# k-diffusion's DiscreteSchedule) over diffusers' float32 SD table. Run on an x86 machine with AVX2:
# ATEN_CPU_CAPABILITY=default python3 sigma-ramps-reference.py > sigma-ramps-reference.json
# (PyTorch 1.13, numpy 1.24; the default capability takes tan, log and exp from libm, as .NET's MathF does; the
# linspaces run in a child process on PyTorch's AVX2 kernel, as a user's x86 build and Sd's table have them). numpy
# picks its float64 exp and log by the CPU: an AVX-512 machine writes some AYS float64 levels an ulp apart from an
# AVX2 one (the test allows 1e-15).
import json
import math
import os
import sys
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_linspace import avx2_linspaces  # noqa: E402


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


class DiscreteSchedule:
    # k-diffusion's DiscreteSchedule (external.py): sigma_to_t unquantized (A1111's default), t_to_sigma.
    def __init__(self, sigmas):
        self.sigmas = sigmas
        self.log_sigmas = sigmas.log()

    def sigma_to_t(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = (low - log_sigma) / (low - high)
        w = w.clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.view(sigma.shape)

    def t_to_sigma(self, t):
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp()


def simple_scheduler(n, inner_model):
    sigs = []
    ss = len(inner_model.sigmas) / n
    for x in range(n):
        sigs += [float(inner_model.sigmas[-(1 + int(x * ss))])]
    sigs += [0.0]
    return torch.FloatTensor(sigs)


def normal_scheduler(n, sigma_min, sigma_max, inner_model, sgm=False):
    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    # torch.linspace(start, end, n + 1)[:-1] if sgm else torch.linspace(start, end, n), on the AVX2 kernel.
    timesteps = avx2_linspaces([[start.item(), end.item(), n + 1 if sgm else n]])[0]
    if sgm:
        timesteps = timesteps[:-1]
    sigs = []
    for x in range(len(timesteps)):
        ts = timesteps[x]
        sigs.append(inner_model.t_to_sigma(ts))
    sigs += [0.0]
    return torch.FloatTensor(sigs)


# diffusers' SD table: scaled_linear betas (torch.linspace of the square roots in float32, squared), torch.cumprod.
# A1111 runs these functions on ldm's table instead (float64 betas and np.cumprod, alphas_cumprod rounded to float32,
# sigmas in float32: up to 8.7e-6 relative apart); the engine has the model's diffusers schedule, so this tests the
# arithmetic on that.
betas = avx2_linspaces([[0.00085 ** 0.5, 0.012 ** 0.5, 1000]])[0] ** 2
alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
model = DiscreteSchedule(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)
table_steps = [1, 2, 3, 7, 10, 20, 30, 50, 150, 999, 1000]
m_min, m_max = model.sigmas[0].item(), model.sigmas[-1].item()


def levels_and_times(sigmas):
    # The levels, the final 0 included, and the training time A1111's model wrapper gives each call (sigma_to_t).
    return {"sigmas": sigmas.tolist(), "times": model.sigma_to_t(sigmas[:-1]).tolist()}


simple = [{"steps": n, **levels_and_times(simple_scheduler(n, model))} for n in table_steps]
normal = [{"sigma_min": lo, "sigma_max": hi, "steps": n, "sgm": sgm, **levels_and_times(normal_scheduler(n, lo, hi, model, sgm))}
          for sgm in [False, True] for lo, hi in [(m_min, m_max), (0.1, 10.0)] for n in table_steps]
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/sigma-ramps-reference.py: torch " + torch.__version__ + ", numpy " + np.__version__,
                  "kl_optimal": kl, "align_your_steps": ays, "sd_sigma_min": m_min, "sd_sigma_max": m_max,
                  "simple": simple, "normal": normal}))
