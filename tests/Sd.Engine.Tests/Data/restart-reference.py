# Writes restart-reference.json: A1111's Restart sampler (modules/sd_samplers_extra.py restart_sampler, its automatic
# restart list; k-diffusion's get_sigmas_karras and to_d), restated below and run call by call on PyTorch 1.13 as Sd's
# SecondOrderSchedulerTests harness reads it. Run on an x86 machine:
# ATEN_CPU_CAPABILITY=default /usr/bin/python3 restart-reference.py > restart-reference.json
# (the default capability takes pow and log from libm, as .NET's MathF does; the linspaces run in a child process on
# PyTorch's AVX2 kernel, as a user's x86 build and Sd's table have them).
# The model is a recording one: it takes the sample and level, scales the input and predicts the data as diffusers'
# Euler does (the convention of Sd's k-diffusion samplers), and returns model outputs drawn in call order from a
# generator seeded 7; the sample [1, 4, 1, 2] is drawn from seed 0, a restart's noise from a generator seeded 42.
# The levels a run starts from are diffusers' Euler levels for SD 1.5's scheduler config (no timestep_spacing: Euler's
# default, linspace; or trailing, whose lowest level at 20 to 24 steps is above 0.2, so that A1111 restarts from the
# finished sample), or its Karras ramp. A part-way start (img2img) runs A1111's way, Restart planned anew over the levels left, with
# the picture noised to the first of the levels left (A1111's sigma_sched[0], before Restart's Karras ramp rebuilds it).
import json
import os
import sys
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_linspace import avx2_linspaces  # noqa: E402
from sd15_levels import euler_levels, recording_model, sigma_to_t  # noqa: E402


def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0):
    # k-diffusion's: a float32 ramp (the AVX2 linspace), Python float ends, float32 arithmetic, a final 0.
    ramp = avx2_linspaces([[0.0, 1.0, n]])[0]
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def restart_steps(sigmas):
    # restart_sampler's step list with its automatic restart list, as (old, new) level pairs.
    steps = sigmas.shape[0] - 1
    restart_list = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = get_sigmas_karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item())
        restart_list = {0.1: [restart_steps + 1, restart_times, 2]}
    restart_list = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restart_list.items()}
    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restart_list:
            segment_steps, times, restart_max = restart_list[i + 1]
            min_idx, max_idx = i + 1, int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                segment = get_sigmas_karras(segment_steps, sigmas[min_idx].item(), sigmas[max_idx].item())[:-1]
                for _ in range(times):
                    pairs.extend(zip(segment[:-1], segment[1:]))
    return pairs


def run(name, prediction, steps, karras=False, first=0, spacing="linspace"):
    sigmas, init_noise_sigma = euler_levels(steps, karras, spacing)
    skipped = first // 2
    # The skipped steps keep their levels, level to level (never run); the rest is planned as A1111 plans its run.
    pairs = list(zip(sigmas[:skipped], sigmas[1:skipped + 1])) + restart_steps(sigmas[skipped:])
    outputs = torch.Generator().manual_seed(7)
    noises = torch.Generator().manual_seed(42)
    x = torch.randn([1, 4, 1, 2], generator=torch.Generator().manual_seed(0))
    records = []
    levels = [s for old, new in pairs for s in ((old,) if new == 0 else (old, new))]  # a step to 0 is one call
    case = {"name": name, "prediction_type": prediction, "karras": karras, "timestep_spacing": spacing, "total": steps, "first": first, "order": 2,
            "init_noise_sigma": init_noise_sigma, "timesteps": [float(sigma_to_t(s)) for s in levels],
            "sigmas": [float(s) for s in levels] + [0.0]}
    if first:
        original, noise = x, torch.randn(x.shape, generator=noises)
        x = original + noise * sigmas[skipped]
        case["add_noise"] = {"original": original.flatten().tolist(), "noise": noise.flatten().tolist(), "output": x.flatten().tolist()}

    model = recording_model(prediction, outputs, records)

    def done(x):
        records[-1]["prev_sample"] = x.flatten().tolist()

    last = None
    for old, new in pairs[skipped:]:
        if last is None:
            last = old
        elif last < old:
            noise = torch.randn(x.shape, generator=noises)
            x = x + noise * 1.0 * (old ** 2 - last ** 2) ** 0.5
            records[-1]["noise"] = noise.flatten().tolist()
            done(x)
        # heun_step: Euler to 0, else Heun.
        denoised = model(x, old, True)
        d = (x - denoised) / old
        dt = new - old
        if new == 0:
            x = x + d * dt
            done(x)
        else:
            x_2 = x + d * dt
            done(x_2)
            denoised_2 = model(x_2, new, False)
            d_2 = (x_2 - denoised_2) / new
            x = x + (d + d_2) / 2 * dt
            done(x)
        last = new
    case["steps"] = records
    return case


cases = [run("epsilon-10", "epsilon", 10), run("epsilon-karras-25", "epsilon", 25, karras=True),
         run("vpred-20", "v_prediction", 20), run("epsilon-40", "epsilon", 40), run("img2img-40-start16", "epsilon", 40, first=16),
         run("img2img-20-start8", "epsilon", 20, first=8), run("trailing-20", "epsilon", 20, spacing="trailing"),
         run("trailing-karras-36", "epsilon", 36, karras=True, spacing="trailing"),
         run("img2img-trailing-30-start8", "epsilon", 30, first=8, spacing="trailing"),
         run("img2img-trailing-24-start4", "epsilon", 24, first=4, spacing="trailing")]
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/restart-reference.py: torch " + torch.__version__ + ", numpy " + np.__version__,
                  "cases": cases}))
