using Sd.Engine.Schedulers;
namespace Sd.Engine.Tests;

/// <summary>
/// The set_timesteps of diffusers 0.27, restated line by line from its source for the spacing tests and written
/// apart from the engine's helpers. Arithmetic follows the reference's dtypes: numpy float64 for np.linspace /
/// np.arange / np.round / np.interp, float32 where diffusers holds torch tensors or float32 numpy arrays (numpy 1.x
/// value-based casting keeps a float64 scalar against a float32 array in float32). Only the training
/// alphas_cumprod comes from the scheduler under test; the fixture step tests pin that table. The float32 log of the
/// sigma table is MathF.Log: x86 numpy's SIMD logf differs by an ulp on some entries, so Euler/LMS Karras timesteps of
/// a real numpy run can differ from these by up to 1e-4 (checked offline against numpy 1.24, where every other value
/// here matched bit for bit for 1..150 steps).
/// </summary>
internal static class DiffusersSchedules
{
    /// <summary>Timesteps before the final dtype cast (int64 for DDIM/PNDM/DPM/LCM, float32 for Euler/LMS),
    /// sigmas with their trailing 0 as stored (float32), and init_noise_sigma.</summary>
    internal sealed record Schedule(double[] Timesteps, float[]? Sigmas, float InitNoiseSigma);

    /// <summary>DDIMScheduler.set_timesteps.</summary>
    public static Schedule Ddim(int n, int steps, string spacing, int offset) => new(spacing switch
    {
        "linspace" => Reverse(Round(Linspace(0, n - 1, steps))),
        "leading" => Add(Reverse(Round(Scale(Arange(0, steps, 1), n / steps))), offset),
        "trailing" => Add(Round(Arange(n, 0, -((double)n / steps))), -1),
        _ => throw new ArgumentException(spacing),
    }, null, 1f);

    /// <summary>PNDMScheduler.set_timesteps with skip_prk_steps: the grid is ascending here, then
    /// plms = concat(t[:-1], t[-2:-1], t[-1:])[::-1].</summary>
    public static Schedule Pndm(int n, int steps, string spacing, int offset)
    {
        double[] t = spacing switch
        {
            "linspace" => Round(Linspace(0, n - 1, steps)),
            "leading" => Add(Round(Scale(Arange(0, steps, 1), n / steps)), offset),
            "trailing" => Add(Reverse(Round(Arange(n, 0, -((double)n / steps)))), -1),
            _ => throw new ArgumentException(spacing),
        };
        double[] secondToLast = t.Length >= 2 ? [t[^2]] : [];
        return new(Reverse([.. t[..^1], .. secondToLast, t[^1]]), null, 1f);
    }

    /// <summary>DPMSolverMultistepScheduler.set_timesteps (lambda_min_clipped -inf so last_timestep = n,
    /// final_sigmas_type zero); the Karras or exponential ramp between the config's sigma_min/sigma_max where given.</summary>
    public static Schedule Dpm(float[] alphasCumprod, int steps, string spacing, int offset, SigmaRamp ramp,
        double? sigmaMin = null, double? sigmaMax = null)
    {
        int n = alphasCumprod.Length, last = n;
        double[] t = spacing switch
        {
            "linspace" => Reverse(Round(Linspace(0, last - 1, steps + 1)))[..^1],
            "leading" => Add(Reverse(Round(Scale(Arange(0, steps + 1, 1), last / (steps + 1))))[..^1], offset),
            "trailing" => Add(Round(Arange(last, 0, -((double)n / steps))), -1),
            _ => throw new ArgumentException(spacing),
        };
        float[] table = TrainingSigmas(alphasCumprod);
        float[] logSigmas = Array.ConvertAll(table, MathF.Log);
        double[] sigmas;
        if (ramp != SigmaRamp.Spaced)
        {
            // sigmas = np.flip(sigmas): in_sigmas[-1] is the smallest training sigma, in_sigmas[0] the largest. Karras
            // timesteps are rounded; exponential ones stay fractional until torch's int64 cast truncates them.
            sigmas = Ramp(ramp, sigmaMin ?? table[0], sigmaMax ?? table[^1], steps);
            double[] times = Array.ConvertAll(sigmas, s => SigmaToT(s, logSigmas));
            t = ramp == SigmaRamp.Karras ? Round(times) : Array.ConvertAll(times, Math.Truncate);
        }
        else
        {
            sigmas = Array.ConvertAll(t, x => Interp(x, table));
        }
        return new(t, [.. Array.ConvertAll(sigmas, s => (float)s), 0f], 1f);
    }

    /// <summary>EulerDiscreteScheduler / EulerAncestralDiscreteScheduler / LMSDiscreteScheduler.set_timesteps
    /// (interpolation_type linear; Karras, exponential and beta ramps for Euler and LMS only, between the config's
    /// sigma_min/sigma_max where given).</summary>
    public static Schedule Euler(float[] alphasCumprod, int steps, string spacing, int offset, SigmaRamp ramp,
        double? sigmaMin = null, double? sigmaMax = null)
    {
        int n = alphasCumprod.Length;
        float[] t = spacing switch
        {
            // np.linspace(0, n - 1, steps, dtype=np.float32)[::-1]
            "linspace" => ToFloat(Reverse(Linspace(0, n - 1, steps))),
            // (np.arange(0, steps) * ratio).round()[::-1].astype(np.float32); timesteps += steps_offset
            "leading" => Array.ConvertAll(ToFloat(Reverse(Round(Scale(Arange(0, steps, 1), n / steps)))), x => x + offset),
            // np.arange(n, 0, -ratio).round().astype(np.float32); timesteps -= 1
            "trailing" => Array.ConvertAll(ToFloat(Round(Arange(n, 0, -((double)n / steps)))), x => x - 1f),
            _ => throw new ArgumentException(spacing),
        };
        float[] table = TrainingSigmas(alphasCumprod);
        double[] sigmas = Array.ConvertAll(t, x => Interp(x, table));
        double[] timesteps = Array.ConvertAll(t, x => (double)x);
        if (ramp != SigmaRamp.Spaced)
        {
            // _convert_to_karras/_exponential(in_sigmas=sigmas): the ramp spans the interpolated sigmas, not the training table.
            float[] logSigmas = Array.ConvertAll(table, MathF.Log);
            sigmas = Ramp(ramp, sigmaMin ?? sigmas[^1], sigmaMax ?? sigmas[0], steps);
            timesteps = Array.ConvertAll(sigmas, s => (double)(float)SigmaToT(s, logSigmas));
        }
        float[] stored = [.. Array.ConvertAll(sigmas, s => (float)s), 0f];
        float max = stored.Max();
        // init_noise_sigma: sigmas.max() for linspace/trailing, (max**2 + 1) ** 0.5 for leading, in float32.
        return new(timesteps, stored, spacing == "leading" ? MathF.Sqrt(max * max + 1f) : max);
    }

    /// <summary>HeunDiscreteScheduler.set_timesteps: Euler's schedule, then torch.cat([t[:1], t[1:].repeat_interleave(2)])
    /// and torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]]).</summary>
    public static Schedule Heun(float[] alphasCumprod, int steps, string spacing, int offset, SigmaRamp ramp,
        double? sigmaMin = null, double? sigmaMax = null)
    {
        Schedule euler = Euler(alphasCumprod, steps, spacing, offset, ramp, sigmaMin, sigmaMax);
        var timesteps = new List<double> { euler.Timesteps[0] };
        var sigmas = new List<float> { euler.Sigmas![0] };
        for (int k = 1; k < steps; k++)
        {
            timesteps.AddRange([euler.Timesteps[k], euler.Timesteps[k]]);
            sigmas.AddRange([euler.Sigmas[k], euler.Sigmas[k]]);
        }
        sigmas.Add(euler.Sigmas[steps]);
        return new([.. timesteps], [.. sigmas], euler.InitNoiseSigma);
    }

    /// <summary>LCMScheduler.set_timesteps (original_inference_steps 50, strength 1): no spacing, no offset.</summary>
    public static Schedule Lcm(int n, int steps)
    {
        const int original = 50;
        int k = n / original;
        double[] origin = Reverse(Add(Scale(Arange(1, original + 1, 1), k), -1));
        double[] indices = Linspace(0, origin.Length, steps, endpoint: false);
        return new(Array.ConvertAll(indices, i => origin[(int)Math.Floor(i)]), null, 1f);
    }

    /// <summary>sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 on the float32 tensor.</summary>
    private static float[] TrainingSigmas(float[] alphasCumprod) =>
        Array.ConvertAll(alphasCumprod, a => MathF.Sqrt((1f - a) / a));

    private static double[] Ramp(SigmaRamp ramp, double sigmaMin, double sigmaMax, int steps) => ramp switch
    {
        SigmaRamp.Karras => Karras(sigmaMin, sigmaMax, steps),
        SigmaRamp.Exponential => Exponential(sigmaMin, sigmaMax, steps),
        SigmaRamp.Beta => Array.ConvertAll(BetaQuantiles.Ramp(steps), q => sigmaMin + q * (sigmaMax - sigmaMin)),
        _ => throw new ArgumentOutOfRangeException(nameof(ramp), ramp, "diffusers has no such ramp"),
    };

    /// <summary>_convert_to_exponential: np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), steps)).</summary>
    private static double[] Exponential(double sigmaMin, double sigmaMax, int steps) =>
        Array.ConvertAll(Linspace(Math.Log(sigmaMax), Math.Log(sigmaMin), steps), Math.Exp);

    /// <summary>_convert_to_karras with rho 7, in float64.</summary>
    private static double[] Karras(double sigmaMin, double sigmaMax, int steps)
    {
        const double rho = 7.0;
        double minInvRho = Math.Pow(sigmaMin, 1 / rho), maxInvRho = Math.Pow(sigmaMax, 1 / rho);
        return Array.ConvertAll(Linspace(0, 1, steps), r => Math.Pow(maxInvRho + r * (minInvRho - maxInvRho), rho));
    }

    /// <summary>_sigma_to_t for one float64 sigma against the float32 log_sigmas array.</summary>
    private static double SigmaToT(double sigma, float[] logSigmas)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        // dists = log_sigma - log_sigmas[:, np.newaxis] is a float32 array: the scalar is cast down first.
        float logSigma32 = (float)logSigma;
        // low_idx = np.cumsum(dists >= 0, axis=0).argmax(axis=0): the first index where the running count peaks.
        int count = 0, best = 0, lowIdx = 0;
        for (int i = 0; i < logSigmas.Length; i++)
        {
            count += logSigma32 - logSigmas[i] >= 0f ? 1 : 0;
            if (count > best)
            {
                best = count;
                lowIdx = i;
            }
        }
        lowIdx = Math.Min(lowIdx, logSigmas.Length - 2);
        int highIdx = lowIdx + 1;
        float low = logSigmas[lowIdx], high = logSigmas[highIdx];
        float w = Math.Clamp((low - logSigma32) / (low - high), 0f, 1f);
        // (1 - w) is still float32; multiplying by the int64 index arrays promotes to float64.
        return (double)(1f - w) * lowIdx + (double)w * highIdx;
    }

    /// <summary>np.linspace: arange(num) * step + start, with the endpoint written exactly.</summary>
    public static double[] Linspace(double start, double stop, int num, bool endpoint = true)
    {
        int div = endpoint ? num - 1 : num;
        double delta = stop - start;
        var y = new double[num];
        for (int i = 0; i < num; i++)
        {
            y[i] = (div > 0 ? i * (delta / div) : i * delta) + start;
        }
        if (endpoint && num > 1)
        {
            y[^1] = stop;
        }
        return y;
    }

    /// <summary>np.arange(start, stop, step) for float64: length ceil((stop - start) / step), then the fill loop
    /// start + i * delta with delta = (start + step) - start, which need not equal step to the last bit.</summary>
    public static double[] Arange(double start, double stop, double step)
    {
        int length = Math.Max(0, (int)Math.Ceiling((stop - start) / step));
        var y = new double[length];
        double second = start + step, delta = second - start;
        for (int i = 0; i < length; i++)
        {
            y[i] = i == 1 ? second : start + i * delta;
        }
        return y;
    }

    /// <summary>np.interp(x, arange(len(fp)), fp) with fp upcast to float64.</summary>
    private static double Interp(double x, float[] fp)
    {
        if (x <= 0)
        {
            return fp[0];
        }
        if (x >= fp.Length - 1)
        {
            return fp[^1];
        }
        int j = (int)Math.Floor(x);
        if (x == j)
        {
            return fp[j];
        }
        double slope = ((double)fp[j + 1] - fp[j]) / ((j + 1) - j);
        return slope * (x - j) + fp[j];
    }

    private static double[] Round(double[] a) => Array.ConvertAll(a, x => Math.Round(x, MidpointRounding.ToEven));

    private static double[] Reverse(double[] a) => [.. Enumerable.Reverse(a)];

    private static double[] Scale(double[] a, double k) => Array.ConvertAll(a, x => x * k);

    private static double[] Add(double[] a, double k) => Array.ConvertAll(a, x => x + k);

    private static float[] ToFloat(double[] a) => Array.ConvertAll(a, x => (float)x);
}
