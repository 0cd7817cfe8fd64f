using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// Where a sigma scheduler puts its noise levels: at its timesteps' sigmas (the config's spacing), on Karras et al.'s
/// rho-7 ramp, spaced evenly in log sigma (A1111's "Exponential" schedule type, diffusers' use_exponential_sigmas), at
/// a Beta(0.6, 0.6) distribution's quantiles (A1111's "Beta", diffusers' use_beta_sigmas; <see cref="BetaSigmas"/>),
/// spaced evenly in arctan sigma (the "KL Optimal" schedule of A1111 and ComfyUI), at NVIDIA's "Align Your Steps"
/// levels for SD 1.5, or on the model's own levels as A1111's and ComfyUI's "Simple", "Normal" and "SGM Uniform"
/// schedule types place them; the ramps' timesteps are the training times of their sigmas. diffusers has the first four.
/// </summary>
public enum SigmaRamp
{
    Spaced,
    Karras,
    Exponential,
    Beta,
    KlOptimal,
    AlignYourSteps,
    Simple,
    Normal,
    SgmUniform,
}

/// <summary>The noise levels of each <see cref="SigmaRamp"/> but the spaced one, from sigma_max down, float64.</summary>
public static class SigmaRamps
{
    /// <summary>
    /// <paramref name="steps"/> levels of <paramref name="ramp"/> from <paramref name="sigmaMax"/> down to
    /// <paramref name="sigmaMin"/> (Align Your Steps and Simple have their own ends and ignore them). Simple, Normal
    /// and SGM Uniform run on the model's levels, <paramref name="trainingSigmas"/> (sqrt((1 - a) / a) of each
    /// training timestep's alphas_cumprod, float32, ascending; <see cref="Scheduler.TrainingSigmas"/>), and need them.
    /// </summary>
    public static double[] Of(SigmaRamp ramp, double sigmaMin, double sigmaMax, int steps, float[]? trainingSigmas = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        return ramp switch
        {
            SigmaRamp.Karras => Karras(sigmaMin, sigmaMax, steps),
            SigmaRamp.Exponential => Exponential(sigmaMin, sigmaMax, steps),
            SigmaRamp.Beta => BetaSigmas.Of(sigmaMin, sigmaMax, steps),
            SigmaRamp.KlOptimal => KlOptimal(sigmaMin, sigmaMax, steps),
            SigmaRamp.AlignYourSteps => AlignYourSteps(steps),
            SigmaRamp.Simple => Simple(ModelLevels(trainingSigmas, ramp, steps), steps),
            SigmaRamp.Normal or SigmaRamp.SgmUniform => Normal(ModelLevels(trainingSigmas, ramp, steps), sigmaMin, sigmaMax, steps, ramp == SigmaRamp.SgmUniform),
            _ => throw new ArgumentOutOfRangeException(nameof(ramp), ramp, "the spaced levels are the scheduler's own, not a ramp's"),
        };
    }

    /// <summary>Whether <paramref name="ramp"/> runs on the model's own levels (Simple, Normal, SGM Uniform) and needs them.</summary>
    internal static bool OnModelLevels(SigmaRamp ramp) => ramp is SigmaRamp.Simple or SigmaRamp.Normal or SigmaRamp.SgmUniform;

    /// <summary>The model's levels a model-level ramp runs on, of which it takes at most one per step (as the schedulers do).</summary>
    private static float[] ModelLevels(float[]? trainingSigmas, SigmaRamp ramp, int steps)
    {
        if (trainingSigmas is null || trainingSigmas.Length < 2)
        {
            throw new ArgumentException($"the {ramp} ramp picks among the model's training sigmas: at least two are needed, got {trainingSigmas?.Length.ToString() ?? "none"}", nameof(trainingSigmas));
        }
        ArgumentOutOfRangeException.ThrowIfGreaterThan(steps, trainingSigmas.Length);
        return trainingSigmas;
    }

    /// <summary>diffusers _convert_to_karras: rho-7 ramp from sigma_max down to sigma_min, float64.</summary>
    internal static double[] Karras(double sigmaMin, double sigmaMax, int steps)
    {
        const double rho = 7.0;
        double minInv = Math.Pow(sigmaMin, 1 / rho), maxInv = Math.Pow(sigmaMax, 1 / rho);
        double[] ramp = Scheduler.NpLinspace(0, 1, steps);
        var sigmas = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            sigmas[i] = Math.Pow(maxInv + ramp[i] * (minInv - maxInv), rho);
        }
        return sigmas;
    }

    /// <summary>
    /// k-diffusion's get_sigmas_karras: the same rho-7 ramp in float32 tensor arithmetic, steps levels and a final 0.
    /// The ends' 1/7th powers are Python's float64 pow; the ramp is torch.linspace(0, 1, steps) in float32, and
    /// max + ramp x (min - max) is taken in float32 with the float64 scalars rounded to float32, as torch applies a
    /// Python scalar to a float32 tensor; ** 7 is float32 pow.
    /// </summary>
    internal static float[] KDiffusionKarras(float sigmaMin, float sigmaMax, int steps)
    {
        const double rho = 7.0;
        double minInv = Math.Pow(sigmaMin, 1 / rho), maxInv = Math.Pow(sigmaMax, 1 / rho);
        float start = (float)maxInv, span = (float)(minInv - maxInv);
        float[] ramp = NoiseSchedule.TorchLinspace(0f, 1f, steps);
        var sigmas = new float[steps + 1];
        for (int i = 0; i < steps; i++)
        {
            sigmas[i] = MathF.Pow(start + ramp[i] * span, (float)rho);
        }
        return sigmas;
    }

    /// <summary>
    /// diffusers _convert_to_exponential: np.exp(np.linspace(log(sigma_max), log(sigma_min), steps)), float64; A1111's
    /// "Exponential" schedule (k-diffusion get_sigmas_exponential) is the same ramp over the model's whole range.
    /// </summary>
    internal static double[] Exponential(double sigmaMin, double sigmaMax, int steps) =>
        Array.ConvertAll(Scheduler.NpLinspace(Math.Log(sigmaMax), Math.Log(sigmaMin), steps), Math.Exp);

    /// <summary>
    /// The KL-optimal schedule (Sabour et al. 2024, "Align Your Steps", for the DDIM solver): tan of the levels'
    /// arctans spaced evenly, from sigma_max down to sigma_min. Reference: ComfyUI's kl_optimal_scheduler, whose
    /// float32 arithmetic this repeats (to the bit where .NET's MathF.Tan is glibc's tanf, as PyTorch's scalar tan is;
    /// another libm's tanf may round an ulp apart): tan is steep near pi/2, so the float32 angle's rounding moves the
    /// top level 13 ulps below the float64 value (sigma_max itself) over SD's range. ComfyUI's SD ends are its float64
    /// table's (sigma_max 14.6146412), Sd's diffusers' float32 one's (14.614645), so most levels differ in the sixth
    /// digit. ComfyUI divides by steps - 1 (one step is NaN there; here it is sigma_max, as in its forks). A1111's version (1.10) runs steps + 1 levels
    /// down to sigma_min with no final 0 (a last step that leaves sigma_min's noise); Sd ends at 0 as every ramp does.
    /// </summary>
    internal static double[] KlOptimal(double sigmaMin, double sigmaMax, int steps)
    {
        // adj_idxs = arange(n, float32) / (n - 1); Python's math.atan scalars meet float32 tensors as float32.
        float atanMin = (float)Math.Atan(sigmaMin), atanMax = (float)Math.Atan(sigmaMax);
        float divisor = Math.Max(steps - 1, 1);
        var sigmas = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            float adj = i / divisor;
            sigmas[i] = MathF.Tan(adj * atanMin + (1f - adj) * atanMax);
        }
        return sigmas;
    }

    /// <summary>
    /// NVIDIA's Align Your Steps levels for SD 1.5 (its ten-step schedule: eleven levels, the last the model's
    /// sigma_min), as ComfyUI lists them to ten digits: SD's float64 training sigmas at NVIDIA's timesteps 999, 850,
    /// 736, 645, 545, 455, 343, 233, 124, 24, 0 (diffusers' AysSchedules and A1111 round them to three decimals, up
    /// to 0.3% apart). SD 2.x shares SD 1.5's noise schedule.
    /// </summary>
    private static readonly double[] Sd15Levels =
        [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582];

    /// <summary>
    /// Align Your Steps (Sabour et al. 2024, NVIDIA's how-to): the levels of a run of <paramref name="steps"/> steps are
    /// steps + 1 points interpolated log-linearly through NVIDIA's eleven (exactly them at ten steps), the last replaced
    /// by the final 0; these are the first <paramref name="steps"/>. Reference: ComfyUI's AlignYourStepsScheduler
    /// (loglinear_interp in numpy float64); diffusers' AysSchedules["StableDiffusionSigmas"] is the ten-step run in
    /// three decimals. A1111 (1.10) interpolates its three-decimal list to steps levels instead and keeps sigma_min
    /// before the 0, so its ten-step run ends one level lower and its eleven-step run is about these ten levels and
    /// sigma_min.
    /// </summary>
    internal static double[] AlignYourSteps(int steps)
    {
        var sigmas = new double[steps];
        if (steps + 1 == Sd15Levels.Length)
        {
            Array.Copy(Sd15Levels, sigmas, steps);
            return sigmas;
        }
        // loglinear_interp: np.interp(linspace(0, 1, steps + 1), linspace(0, 1, 11), log(levels[::-1])), exp, reversed.
        int count = Sd15Levels.Length;
        double[] xs = Scheduler.NpLinspace(0, 1, count), targets = Scheduler.NpLinspace(0, 1, steps + 1);
        var logs = new double[count];
        for (int j = 0; j < count; j++)
        {
            logs[j] = Math.Log(Sd15Levels[count - 1 - j]);
        }
        for (int i = 0; i < steps; i++)
        {
            sigmas[i] = Math.Exp(NpInterp(targets[steps - i], xs, logs));
        }
        return sigmas;
    }

    /// <summary>
    /// np.interp(x, xp, fp) for ascending <paramref name="xp"/> spanning x (numpy's compiled_base.c): fp[j] where x is
    /// xp[j], else slope x (x - xp[j]) + fp[j] with the slope (fp[j+1] - fp[j]) / (xp[j+1] - xp[j]).
    /// </summary>
    private static double NpInterp(double x, double[] xp, double[] fp)
    {
        if (x >= xp[^1])
        {
            return fp[^1];
        }
        int j = 0;
        while (x >= xp[j + 1])
        {
            j++;
        }
        if (x == xp[j])
        {
            return fp[j];
        }
        double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        return slope * (x - xp[j]) + fp[j];
    }

    /// <summary>
    /// A1111's and ComfyUI's "Simple" schedule type: every (N / steps)-th of the model's N levels from the top, the
    /// index truncated: level N - 1 - int(i x N / steps) (float64, as Python multiplies). Reference: A1111's
    /// simple_scheduler (modules/sd_schedulers.py 1.10), ComfyUI's simple_scheduler.
    /// </summary>
    internal static double[] Simple(float[] trainingSigmas, int steps)
    {
        int n = trainingSigmas.Length;
        double stride = (double)n / steps;
        var sigmas = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            sigmas[i] = trainingSigmas[n - 1 - (int)(i * stride)];
        }
        return sigmas;
    }

    /// <summary>
    /// A1111's "Normal" and "SGM Uniform" schedule types: timesteps spaced evenly (torch.linspace, float32) from
    /// sigma_max's training time down to sigma_min's, over steps points or, SGM Uniform, steps + 1 with the last
    /// dropped; each level the log-linear blend of its timestep's neighbouring training sigmas (k-diffusion's
    /// t_to_sigma, float32, so even the top level is exp(log sigma_max), a float32 ulp off it). Over the model's
    /// whole range, Normal is A1111's "Uniform" (its Automatic for Euler), and SGM Uniform is DPM-Solver's linspace
    /// spacing with the levels interpolated in log sigma. Reference: A1111's normal_scheduler (sgm for SGM Uniform)
    /// on k-diffusion's DiscreteSchedule with unquantized sigma_to_t (A1111's default); ComfyUI's normal and
    /// sgm_uniform differ only in quantizing the ends' timesteps, which the model's own ends make 999 and 0 either way.
    /// </summary>
    internal static double[] Normal(float[] trainingSigmas, double sigmaMin, double sigmaMax, int steps, bool sgm)
    {
        float[] logSigmas = Array.ConvertAll(trainingSigmas, MathF.Log);
        float start = TrainingTime((float)sigmaMax, logSigmas), end = TrainingTime((float)sigmaMin, logSigmas);
        float[] timesteps = NoiseSchedule.TorchLinspace(start, end, sgm ? steps + 1 : steps);
        int last = logSigmas.Length - 1;
        var sigmas = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            float t = Math.Clamp(timesteps[i], 0f, last);
            float w = t - MathF.Truncate(t);
            float logSigma = (1f - w) * logSigmas[(int)MathF.Floor(t)] + w * logSigmas[(int)MathF.Ceiling(t)];
            sigmas[i] = MathF.Exp(logSigma);
        }
        return sigmas;
    }

    /// <summary>
    /// k-diffusion's sigma_to_t in float32: the log-sigma interpolation of <see cref="Scheduler.SigmaToT"/>, its log
    /// libm's logf of the float32 level (so each of the model's own levels is exactly its timestep), blended in float32.
    /// </summary>
    internal static float TrainingTime(float sigma, float[] logSigmas) =>
        Scheduler.BlendedTime(Scheduler.LogSigmaToTInterpolation(MathF.Log(sigma), logSigmas));
}
