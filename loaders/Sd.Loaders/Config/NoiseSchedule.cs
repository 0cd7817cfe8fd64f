namespace Sd.Loaders.Config;

/// <summary>
/// The training noise schedule a scheduler config describes: its betas and their cumulative alpha product, computed
/// as diffusers computes them. A function of the config alone, so a config file is checked against it when it loads.
/// Reference: diffusers DDPMScheduler.__init__ (betas_for_alpha_bar, torch.linspace, torch.cumprod).
/// </summary>
public static class NoiseSchedule
{
    /// <summary>torch.linspace(start, end, steps, dtype=float32) as the CPU kernel computes it.</summary>
    private static float[] TorchLinspace(float start, float end, int steps)
    {
        var result = new float[steps];
        if (steps == 1)
        {
            result[0] = start;
            return result;
        }
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++)
        {
            result[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
        }
        return result;
    }

    /// <summary>
    /// alphas_cumprod over the training steps, float32 as diffusers stores it. Throws an ArgumentException when the
    /// product falls below <see cref="MinAlphaCumprod"/> (the last steps' noise levels would overflow the samplers'
    /// float32 arithmetic) and NotSupportedException for an unknown beta_schedule (a config built in code; a loaded
    /// one was checked).
    /// </summary>
    public static float[] AlphasCumprod(SchedulerConfig config)
    {
        int n = config.NumTrainTimesteps;
        float[] betas;
        if (config.TrainedBetas is { } trained)
        {
            betas = (float[])trained.Clone();
        }
        else
        {
            switch (config.BetaSchedule)
            {
                case "linear":
                    betas = TorchLinspace((float)config.BetaStart, (float)config.BetaEnd, n);
                    break;
                case "scaled_linear":
                    betas = TorchLinspace((float)Math.Sqrt(config.BetaStart), (float)Math.Sqrt(config.BetaEnd), n);
                    for (int i = 0; i < n; i++)
                    {
                        betas[i] *= betas[i];
                    }
                    break;
                case "squaredcos_cap_v2":
                    betas = new float[n];
                    for (int i = 0; i < n; i++)
                    {
                        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
                        double t1 = (double)i / n, t2 = (double)(i + 1) / n;
                        betas[i] = (float)Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), 0.999);
                    }
                    break;
                default:
                    throw new NotSupportedException($"beta_schedule '{config.BetaSchedule}' is not supported");
            }
        }
        // torch.cumprod on CPU accumulates float32 inputs in double (acc_type) and stores float32; this matches the
        // fixtures' DDIM steps more closely than a float32 accumulation (sigma_max still differs by ~2 ulp).
        var cumprod = new float[n];
        double acc = 1.0;
        for (int i = 0; i < n; i++)
        {
            float alpha = 1f - betas[i];
            acc *= alpha;
            cumprod[i] = (float)acc;
        }
        // Betas are checked to lie in [0, 1) when the config loads, but enough of them can still drive the product
        // to 0 in float32, or so near it that the last noise level sqrt((1 - a) / a) overflows the samplers' float32
        // arithmetic (a = 1e-39 gives an infinite sigma, a = 1e-30 an infinite sigma^4 in Euler ancestral's step).
        if (!(cumprod[n - 1] >= MinAlphaCumprod))
        {
            throw new ArgumentException($"the noise schedule's alphas_cumprod falls to {cumprod[n - 1]} by its last training step (num_train_timesteps {n}, beta_schedule {(config.TrainedBetas == null ? config.BetaSchedule : "trained_betas")}): at least {MinAlphaCumprod} is needed, or its noise level sqrt((1 - a) / a) passes 1e9 and the samplers' float32 arithmetic overflows", nameof(config));
        }
        return cumprod;
    }

    /// <summary>
    /// The smallest alphas_cumprod a schedule may reach: its noise level is then 1e9, whose fourth power (Euler
    /// ancestral multiplies two squared levels) stays finite in float32. SD's schedule ends at 0.0047 (sigma 14.6),
    /// the cosine schedule at 2.4e-9 (sigma 2e4), a zero-terminal-SNR one at 2^-24 (sigma 4096).
    /// </summary>
    public const double MinAlphaCumprod = 1e-18;
}
