# Writes dpm-fast-reference.json: A1111's "DPM fast", k-diffusion's sample_dpm_fast (DPMSolver.dpm_solver_fast with
# dpm_solver_1/2/3_step and get_ancestral_step, k_diffusion/sampling.py at commit 686dbad, A1111's pin), with the eta
# of 1 A1111 gives it (opts.eta_ancestral), restated below call by call and run on PyTorch 1.13 as Sd's
# SecondOrderSchedulerTests harness reads it. Run on an x86 machine:
# ATEN_CPU_CAPABILITY=default /usr/bin/python3 dpm-fast-reference.py > dpm-fast-reference.json
# (libm's exp, log and expm1, as .NET's MathF takes them; the linspaces run on PyTorch's AVX2 kernel, as a user's x86
# build has them).
# The model is a recording one: it takes the sample and level, scales the input and predicts the data as diffusers'
# Euler does (the convention of Sd's k-diffusion samplers), and returns model outputs drawn in call order from a
# generator seeded 7; the sample [1, 4, 3, 5] is drawn from seed 0, the steps' noise from a generator seeded 42 (one
# draw per step, the last's multiplied by 0).
# The ends are A1111's: a run from the first step (txt2img) spans the training table's ends (model_wrap.sigmas[0] and
# [-1]) whatever the schedule, a part-way start (img2img: sample_img2img's sigma_sched) spans from the level it starts
# at to the last level above 0 of diffusers' Euler levels (linspace or trailing spacing, or their Karras ramp), with
# the picture noised to the first.
import json
import math
import os
import sys
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_linspace import avx2_linspaces  # noqa: E402
from sd15_levels import euler_levels, recording_model, sigma_to_t, train_sigmas  # noqa: E402


def sigma_fn(t):
    return t.neg().exp()


def t_fn(sigma):
    return -sigma.log()


def get_ancestral_step(sigma_from, sigma_to, eta=1.0):
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def run(name, prediction, steps, karras=False, first=0, spacing="linspace"):
    sigmas, _ = euler_levels(steps, karras, spacing)
    if first == 0:
        sigma_min, sigma_max = train_sigmas[0].item(), train_sigmas[-1].item()
    else:
        sigma_min, sigma_max = sigmas[steps - 1].item(), sigmas[first].item()
    nfe = steps - first
    outputs = torch.Generator().manual_seed(7)
    noises = torch.Generator().manual_seed(42)
    x = torch.randn([1, 4, 3, 5], generator=torch.Generator().manual_seed(0))
    records = []
    case = {"name": name, "prediction_type": prediction, "karras": karras, "timestep_spacing": spacing, "total": steps, "first": first,
            "order": 1, "init_noise_sigma": train_sigmas[-1].item()}
    if first:
        original, noise = x, torch.randn(x.shape, generator=noises)
        x = original + noise * sigmas[first]
        case["add_noise"] = {"original": original.flatten().tolist(), "noise": noise.flatten().tolist(), "output": x.flatten().tolist()}

    model = recording_model(prediction, outputs, records)

    def eps(x, t):
        # DPMSolver.eps: the model called at sigma(t) for a batch of one.
        sigma = sigma_fn(t) * x.new_ones([x.shape[0]])
        return (x - model(x, sigma)) / sigma_fn(t)

    def done(x):
        records[-1]["prev_sample"] = x.flatten().tolist()

    t_start, t_end = t_fn(torch.tensor(sigma_max)), t_fn(torch.tensor(sigma_min))
    assert t_end > t_start
    m = math.floor(nfe / 3) + 1
    ts = avx2_linspaces([[float(t_start), float(t_end), m + 1]])[0]
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    levels = []
    for i in range(len(orders)):
        t, t_next = ts[i], ts[i + 1]
        sd, su = get_ancestral_step(sigma_fn(t), sigma_fn(t_next))
        t_next_ = torch.minimum(t_end, t_fn(sd))
        su = (sigma_fn(t_next) ** 2 - sigma_fn(t_next_) ** 2) ** 0.5
        h = t_next_ - t
        e = eps(x, t)
        if orders[i] == 1:
            levels += [t]
            x_next = x - sigma_fn(t_next_) * h.expm1() * e
        elif orders[i] == 2:
            r1 = 1 / 2
            s1 = t + r1 * h
            levels += [t, s1]
            u1 = x - sigma_fn(s1) * (r1 * h).expm1() * e
            done(u1)
            e_r1 = eps(u1, s1)
            x_next = x - sigma_fn(t_next_) * h.expm1() * e - sigma_fn(t_next_) / (2 * r1) * h.expm1() * (e_r1 - e)
        else:
            r1, r2 = 1 / 3, 2 / 3
            s1, s2 = t + r1 * h, t + r2 * h
            levels += [t, s1, s2]
            u1 = x - sigma_fn(s1) * (r1 * h).expm1() * e
            done(u1)
            e_r1 = eps(u1, s1)
            u2 = x - sigma_fn(s2) * (r2 * h).expm1() * e - sigma_fn(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (e_r1 - e)
            done(u2)
            e_r2 = eps(u2, s2)
            x_next = x - sigma_fn(t_next_) * h.expm1() * e - sigma_fn(t_next_) / r2 * (h.expm1() / h - 1) * (e_r2 - e)
        noise = torch.randn(x.shape, generator=noises)
        x = x_next + su * 1.0 * noise
        if su != 0:
            records[-1]["noise"] = noise.flatten().tolist()
        done(x)
    # The skipped steps keep their own levels (never run); the run's calls are at sigma(t) of the levels above.
    skipped = [float(s) for s in sigmas[:first]]
    case["timesteps"] = [float(sigma_to_t(torch.tensor(s))) for s in skipped] + [records[k]["t"] for k in range(len(records))]
    case["sigmas"] = skipped + [float(sigma_fn(t)) for t in levels] + [float(sigma_fn(t_end))]
    case["steps"] = records
    return case


cases = [run("epsilon-10", "epsilon", 10), run("epsilon-9", "epsilon", 9), run("epsilon-1", "epsilon", 1),
         run("epsilon-karras-8", "epsilon", 8, karras=True), run("vpred-5", "v_prediction", 5), run("sample-4", "sample", 4),
         run("epsilon-25", "epsilon", 25), run("img2img-10-start4", "epsilon", 10, first=4),
         run("img2img-karras-20-start6", "epsilon", 20, karras=True, first=6),
         run("img2img-trailing-12-start2", "epsilon", 12, first=2, spacing="trailing")]
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/dpm-fast-reference.py: torch " + torch.__version__ + ", numpy " + np.__version__,
                  "k_diffusion_commit": "686dbad0f39640ea25c8a8c6a6e56bb40eacefa2", "cases": cases}))
