# SD 1.5's noise levels as the k-diffusion reference scripts beside this file (restart-reference.py,
# dpm-fast-reference.py) take them: diffusers' training table, k-diffusion's sigma_to_t (A1111's model wrapper) and
# diffusers' Euler levels, which Sd's k-diffusion samplers run on; and the recording model that drives them.
import numpy as np
import torch

from torch_linspace import avx2_linspaces

# diffusers' SD table: scaled_linear betas (torch.linspace of the square roots in float32, squared), torch.cumprod.
betas = avx2_linspaces([[0.00085 ** 0.5, 0.012 ** 0.5, 1000]])[0] ** 2
alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
train_sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
log_sigmas = train_sigmas.log()


def sigma_to_t(sigma):
    # k-diffusion's DiscreteSchedule.sigma_to_t, unquantized (A1111's model wrapper).
    log_sigma = sigma.log()
    dists = log_sigma - log_sigmas[:, None]
    low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = ((low - log_sigma) / (low - high)).clamp(0, 1)
    return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)


def euler_levels(steps, karras, spacing):
    # diffusers' EulerDiscreteScheduler.set_timesteps, linspace or trailing spacing: np.interp of the table in float64,
    # diffusers' float64 Karras ramp between the ends, a final 0, float32; init_noise_sigma is the top level for both.
    if spacing == "linspace":
        timesteps = np.linspace(0, 999, steps, dtype=np.float32)[::-1].copy()
    else:
        timesteps = np.arange(1000, 0, -1000 / steps).round().copy().astype(np.float32) - 1
    table = train_sigmas.numpy()
    sigmas = np.interp(timesteps, np.arange(0, len(table)), table)
    if karras:
        ramp = np.linspace(0, 1, steps)
        min_inv, max_inv = sigmas[-1].item() ** (1 / 7.0), sigmas[0].item() ** (1 / 7.0)
        sigmas = (max_inv + ramp * (min_inv - max_inv)) ** 7.0
    sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
    return sigmas, float(sigmas.max())


def recording_model(prediction, outputs, records):
    # A model that takes the sample and level, scales the input and predicts the data as diffusers' Euler does (the
    # convention of Sd's k-diffusion samplers) from an output drawn from the generator outputs, and appends each call
    # to records as Sd's SecondOrderSchedulerTests harness reads it (the caller adds the call's prev_sample).
    def model(x, sigma, first_order=True):
        scaled = x / ((sigma ** 2 + 1) ** 0.5)
        output = torch.randn(x.shape, generator=outputs)
        if prediction == "epsilon":
            denoised = x - sigma * output
        elif prediction == "sample":
            denoised = output
        else:
            denoised = output * (-sigma / (sigma ** 2 + 1) ** 0.5) + (x / (sigma ** 2 + 1))
        records.append({"first_order": first_order, "t": float(sigma_to_t(sigma)), "sigma": float(sigma),
                        "sample": x.flatten().tolist(), "scaled_input": scaled.flatten().tolist(),
                        "model_output": output.flatten().tolist()})
        return denoised
    return model
