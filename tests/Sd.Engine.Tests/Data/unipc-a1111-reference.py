# Writes unipc-a1111-reference.json: A1111's "UniPC" (modules/sd_samplers_timesteps_impl.py's unipc with
# modules/models/diffusion/uni_pc/uni_pc.py, A1111 1.6 to 1.10) at A1111's defaults: variant bh1, skip type
# time_uniform, order 3, lower order final; predict_x0, no thresholding, no denoise to zero. Its pieces are restated
# below as they compute (NoiseScheduleVP('discrete') with interpolate_fn, multistep_uni_pc_bh_update,
# UniPC.sample(method='multistep'), the model time (t - 1/N) * 1000, CompVisTimestepsVDenoiser's v to epsilon at the
# truncated timestep, A1111's timestep grid and img2img start) and run on PyTorch 1.13. Run on an x86 machine:
# ATEN_CPU_CAPABILITY=default /usr/bin/python3 unipc-a1111-reference.py > unipc-a1111-reference.json
# (libm's exp, log and sqrt, as .NET's MathF takes them; the linspaces run on PyTorch's AVX2 kernel, as a user's x86
# build has them). expm1 is the one function taken another way: correctly rounded to float32, as Sd takes it. torch
# takes a 0-dim tensor's from the platform's float expm1f (glibc 2.36's is an ulp off at 2 of epsilon-30's 31 updates,
# CUDA's is another function again), and UniPC's weights amplify that ulp: h_phi_2 = h_phi_1 / hh - 1 and h_phi_3 =
# h_phi_2 / hh - 1/2 cancel all but about hh / 6 of their terms, so an ulp of expm1 moves the rhos by 1e-5 relative
# and a call by 1.2e-5 (1.4e-6 of its scale). With it correctly rounded on both sides, every call agrees to 1e-6.
# The model is a recording one: it takes the sample and model time and returns outputs drawn in call order from a
# generator seeded 7; the sample [1, 4, 3, 5] is drawn from seed 0, an img2img start's noise from a generator seeded 42.
# "sample" prediction is uni_pc's model_wrapper "x_start" (A1111 has no such models). Each call is recorded with the
# sample it was given and the sample the next call is given (the last call's: the run's result), as Sd's Step returns
# it: the last update corrected with this call's output, then the next update predicted.
import json
import math
import os
import sys
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_linspace import avx2_linspaces  # noqa: E402
from sd15_levels import alphas_cumprod  # noqa: E402

N = len(alphas_cumprod)
t_array = avx2_linspaces([[0.0, 1.0, N + 1]])[0][1:]
log_alpha_array = 0.5 * torch.log(alphas_cumprod)


def interpolate(x, xp, yp):
    # interpolate_fn for one point: the segment of the last keypoint at or below x (ties go right, as torch's sort
    # places them here; the first and last segments extrapolate), start_y + (x - start_x) * (dy) / (dx) in float32.
    j = int((xp <= x).sum()) - 1
    j = min(max(j, 0), len(xp) - 2)
    return yp[j] + (x - xp[j]) * (yp[j + 1] - yp[j]) / (xp[j + 1] - xp[j])


def log_alpha(t):
    return interpolate(t, t_array, log_alpha_array)


def alpha(t):
    return torch.exp(log_alpha(t))


def std(t):
    return torch.sqrt(1. - torch.exp(2. * log_alpha(t)))


def lam(t):
    la = log_alpha(t)
    return la - 0.5 * torch.log(1. - torch.exp(2. * la))


def expm1(x):
    # torch.expm1 of the 0-dim hh, correctly rounded to float32 (see the header).
    return torch.tensor(np.float32(math.expm1(float(x))))


def bh1_update(x, models, times, t, order, model_fn):
    # multistep_uni_pc_bh_update, variant bh1, predict_x0; model_fn is None for the last update (no corrector).
    t_prev_0 = times[-1]
    lambda_prev_0, lambda_t = lam(t_prev_0), lam(t)
    model_prev_0 = models[-1]
    sigma_prev_0, sigma_t = std(t_prev_0), std(t)
    alpha_t = torch.exp(log_alpha(t))
    h = lambda_t - lambda_prev_0
    rks, D1s = [], []
    for i in range(1, order):
        rk = (lam(times[-(i + 1)]) - lambda_prev_0) / h
        rks.append(rk)
        D1s.append((models[-(i + 1)] - model_prev_0) / rk)
    rks.append(1.)
    rks = torch.tensor(rks)
    hh = -h
    h_phi_1 = expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    factorial_i = 1
    B_h = hh
    R, b = [], []
    for i in range(1, order + 1):
        R.append(torch.pow(rks, i - 1))
        b.append(h_phi_k * factorial_i / B_h)
        factorial_i *= (i + 1)
        h_phi_k = h_phi_k / hh - 1 / factorial_i
    R = torch.stack(R)
    b = torch.tensor(b)
    if D1s:
        D1s = torch.stack(D1s, dim=1)
        rhos_p = torch.tensor([0.5]) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
    else:
        D1s = None
    x_t_ = (sigma_t / sigma_prev_0) * x - (alpha_t * h_phi_1) * model_prev_0
    pred_res = torch.einsum('k,bkchw->bchw', rhos_p, D1s) if D1s is not None else 0
    x_t = x_t_ - (alpha_t * B_h) * pred_res
    if model_fn is None:
        return x_t, None
    rhos_c = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(R, b)
    model_t = model_fn(x_t, t)
    corr_res = torch.einsum('k,bkchw->bchw', rhos_c[:-1], D1s) if D1s is not None else 0
    D1_t = model_t - model_prev_0
    return x_t_ - (alpha_t * B_h) * (corr_res + rhos_c[-1] * D1_t), model_t


def run(name, prediction, steps, first=0):
    outputs = torch.Generator().manual_seed(7)
    noises = torch.Generator().manual_seed(42)
    x = torch.randn([1, 4, 3, 5], generator=torch.Generator().manual_seed(0))
    stride = 1000 // steps
    grid = [min(max(g + 1, 0), 999) for g in range(0, 1000, stride)]  # get_timesteps: clip(range(0, 1000, 1000 // steps) + 1)
    case = {"name": name, "prediction_type": prediction, "total": steps, "first": first}
    if first == 0:
        calls, t_T = len(grid), 1.0
    else:
        t_enc = steps - first
        calls = t_enc
        t_T = float(torch.tensor(grid[t_enc - 1]) / 1000 + 1 / 1000)  # sample_img2img's t_start, float32
        a = alphas_cumprod[grid[t_enc]]
        original, noise = x, torch.randn(x.shape, generator=noises)
        x = original * torch.sqrt(a) + noise * torch.sqrt(1 - a)
        case["add_noise"] = {"original": original.flatten().tolist(), "noise": noise.flatten().tolist(), "output": x.flatten().tolist()}
    assert calls >= 3
    timesteps = avx2_linspaces([[t_T, 1. / N, calls + 1]])[0]  # get_time_steps('time_uniform', t_T, t_0 = 1 / N)
    records = []

    def model_fn(x, t):
        # UniPCCFG.model at the model time, A1111's denoiser's epsilon, then data_prediction_fn.
        t_input = (t - 1. / N) * 1000.
        output = torch.randn(x.shape, generator=outputs)
        if records:
            records[-1]["prev_sample"] = x.flatten().tolist()
        records.append({"t": float(t_input), "sample": x.flatten().tolist(), "model_output": output.flatten().tolist()})
        a_t, s_t = alpha(t), std(t)
        if prediction == "epsilon":
            eps = output
        elif prediction == "v_prediction":
            k = int(t_input)  # t.to(torch.int)
            eps = torch.sqrt(alphas_cumprod[k]) * output + torch.sqrt(1 - alphas_cumprod[k]) * x
        else:
            eps = (x - a_t * output) / s_t
        return (x - s_t * eps) / a_t

    order = 3
    models, times = [model_fn(x, timesteps[0])], [timesteps[0]]
    for init_order in range(1, order):
        x, m = bh1_update(x, models, times, timesteps[init_order], init_order, model_fn)
        models.append(m)
        times.append(timesteps[init_order])
    for step in range(order, calls + 1):
        step_order = min(order, calls + 1 - step)
        x, m = bh1_update(x, models, times, timesteps[step], step_order, model_fn if step < calls else None)
        models, times = models[1:] + [m], times[1:] + [timesteps[step]]
    records[-1]["prev_sample"] = x.flatten().tolist()
    # A part-way run's skipped entries hold the grid's model times from the top (never run).
    skipped = [float(grid[steps - 1 - j]) for j in range(first)]
    case["timesteps"] = skipped + [r["t"] for r in records]
    case["steps"] = records
    return case


cases = [run("epsilon-20", "epsilon", 20), run("epsilon-30", "epsilon", 30), run("epsilon-7", "epsilon", 7),
         run("epsilon-3", "epsilon", 3), run("epsilon-5", "epsilon", 5), run("vpred-10", "v_prediction", 10),
         run("sample-6", "sample", 6),
         run("img2img-20-start8", "epsilon", 20, first=8), run("img2img-10-start7", "epsilon", 10, first=7),
         run("img2img-vpred-30-start9", "v_prediction", 30, first=9)]
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/unipc-a1111-reference.py: torch " + torch.__version__ + ", numpy " + np.__version__,
                  "cases": cases}))
