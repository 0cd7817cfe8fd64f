using System.Globalization;

namespace Sd.Loaders.Config;

/// <summary>
/// The training noise schedule a scheduler config describes: its betas and their cumulative alpha product, computed
/// as diffusers computes them. A function of the config alone, so a config file is checked against it when it loads.
/// Reference: diffusers DDPMScheduler.__init__ (betas_for_alpha_bar, torch.linspace, torch.cumprod).
/// </summary>
public static class NoiseSchedule
{
    /// <summary>
    /// torch.linspace(start, end, steps, dtype=float32) bit for bit as PyTorch 1.13's AVX2 CPU kernel computes it
    /// (the build the fixtures were made with: their sigma_max 14.614645 is this table's; the plain scalar formula
    /// gives 2 ulp more). Each 8-lane vector takes a base, start + step * i in the first half and end - step *
    /// (steps - 1 - i) in the second, each one rounding (the compiler contracts them to FMAs), and adds j * step,
    /// rounded on its own, for lane j; the vector loop runs two vectors at a time, and the elements after its last pair
    /// are each a base. Checked against that build for 16 step counts from 1 to 4097 and 5 ranges. Past 32768 steps
    /// PyTorch splits the range over its threads, each with its own vector grouping, so there the values can differ
    /// from a PyTorch run in the last bit (no SD schedule has that many).
    /// </summary>
    internal static float[] TorchLinspace(float start, float end, int steps)
    {
        var result = new float[steps];
        if (steps == 1)
        {
            result[0] = start;
            return result;
        }
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        float Base(int i) => i < halfway ? MathF.FusedMultiplyAdd(step, i, start) : MathF.FusedMultiplyAdd(-step, steps - 1 - i, end);
        const int lanes = 8;
        int vectorEnd = steps - steps % (2 * lanes);
        for (int i = 0; i < vectorEnd; i += lanes)
        {
            float b = Base(i);
            result[i] = b;
            for (int j = 1; j < lanes; j++)
            {
                result[i + j] = b + j * step;
            }
        }
        for (int i = vectorEnd; i < steps; i++)
        {
            result[i] = Base(i);
        }
        return result;
    }

    /// <summary>
    /// alphas_cumprod over the training steps, float32 as diffusers stores it; with
    /// <paramref name="rescaleZeroTerminalSnr"/> (the config's rescale_betas_zero_snr, where the scheduler class reads
    /// it) the betas are first rescaled to zero terminal SNR, so the product ends at exactly 0. Throws an
    /// ArgumentException when the product falls below <see cref="MinAlphaCumprod"/> before that end (the noise levels
    /// would overflow the samplers' float32 arithmetic) and NotSupportedException for an unknown beta_schedule (a
    /// config built in code; a loaded one was checked).
    /// </summary>
    public static float[] AlphasCumprod(SchedulerConfig config, bool rescaleZeroTerminalSnr)
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
        string schedule = config.TrainedBetas == null ? config.BetaSchedule : "trained_betas";
        if (rescaleZeroTerminalSnr)
        {
            betas = RescaleZeroTerminalSnr(Cumprod(betas), schedule);
        }
        float[] cumprod = Cumprod(betas);
        // Betas are checked to lie in [0, 1) when the config loads, but enough of them can still drive the product
        // to 0 in float32, or so near it that the last noise level sqrt((1 - a) / a) overflows the samplers' float32
        // arithmetic (a = 1e-39 gives an infinite sigma, a = 1e-30 an infinite sigma^4 in Euler ancestral's step).
        // A zero-terminal-SNR schedule ends at 0 by design (each scheduler class deals with that end its own way), so
        // the step before it is checked.
        int last = rescaleZeroTerminalSnr ? n - 2 : n - 1;
        if (rescaleZeroTerminalSnr && !(cumprod[0] < 1f))
        {
            // The rescale keeps the first level in exact arithmetic, but in float32 the first beta can round to 0: a
            // step without noise, whose sigma of 0 the Euler samplers divide by.
            throw new ArgumentException($"rescale_betas_zero_snr leaves the first training step without noise (alphas_cumprod[0] rounds to 1 from beta_schedule {schedule}): a larger beta_start is needed", nameof(config));
        }
        if (!(cumprod[last] >= MinAlphaCumprod))
        {
            throw new ArgumentException($"the noise schedule's alphas_cumprod falls to {cumprod[last]} by training step {last} (num_train_timesteps {n}, beta_schedule {schedule}{(rescaleZeroTerminalSnr ? ", rescaled to zero terminal SNR" : "")}): at least {MinAlphaCumprod} is needed, or its noise level sqrt((1 - a) / a) passes 1e9 and the samplers' float32 arithmetic overflows", nameof(config));
        }
        return cumprod;
    }

    /// <summary>
    /// torch.cumprod(1 - betas) in float32. On the CPU it accumulates float32 inputs in double (acc_type) and stores
    /// float32 (bit for bit against PyTorch 1.13).
    /// </summary>
    private static float[] Cumprod(float[] betas)
    {
        var cumprod = new float[betas.Length];
        double acc = 1.0;
        for (int i = 0; i < betas.Length; i++)
        {
            float alpha = 1f - betas[i];
            acc *= alpha;
            cumprod[i] = (float)acc;
        }
        return cumprod;
    }

    /// <summary>
    /// The betas whose schedule has zero terminal SNR: sqrt(alphas_cumprod) shifted so its last value is 0 and scaled
    /// so its first stays, then turned back into betas, in PyTorch's float32 steps.
    /// Reference: diffusers rescale_zero_terminal_snr (scheduling_ddim.py; Lin et al. 2023, Algorithm 1).
    /// </summary>
    private static float[] RescaleZeroTerminalSnr(float[] alphasCumprod, string schedule)
    {
        int n = alphasCumprod.Length;
        var root = new float[n];
        for (int i = 0; i < n; i++)
        {
            root[i] = MathF.Sqrt(alphasCumprod[i]);
        }
        float first = root[0], terminal = root[n - 1];
        if (!(first > terminal))
        {
            // One training step, or betas of 0 throughout: there is no falling schedule to stretch to zero (diffusers
            // divides 0 by 0 here).
            throw new ArgumentException($"rescale_betas_zero_snr needs a noise schedule whose alphas_cumprod falls; {schedule} over {n} training steps stays at {alphasCumprod[0]}", "config");
        }
        float scale = first / (first - terminal);
        var betas = new float[n];
        float previous = 0f;
        for (int i = 0; i < n; i++)
        {
            float shifted = (root[i] - terminal) * scale;
            float alphaBar = shifted * shifted;
            float alpha = i == 0 ? alphaBar : alphaBar / previous;
            betas[i] = 1f - alpha;
            previous = alphaBar;
        }
        return betas;
    }

    /// <summary>
    /// What diffusers' Euler, Euler ancestral and DPM-Solver schedulers raise a zero-terminal-SNR schedule's final 0
    /// to ("close to 0 without being 0 so first sigma is not inf"; float16's smallest subnormal): its noise level is
    /// 4096.
    /// </summary>
    public const float ZeroSnrFloor = 1f / (1 << 24);

    /// <summary>
    /// The noise levels a Karras ramp may run between: at most <see cref="MaxSigma"/>, the level of
    /// <see cref="MinAlphaCumprod"/> (float32 sampling stays finite), and at least <see cref="MinSigma"/>, diffusers'
    /// floor for mapping a level to a timestep (the last step divides by it).
    /// </summary>
    public const double MinSigma = 1e-10, MaxSigma = 1e9;

    /// <summary>A bound of that range as messages state it ("1e-10", "1e9").</summary>
    public static string SigmaText(double sigma) => sigma.ToString("0e0", CultureInfo.InvariantCulture);

    /// <summary>
    /// The smallest alphas_cumprod a schedule may reach: its noise level is then 1e9, whose fourth power (Euler
    /// ancestral multiplies two squared levels) stays finite in float32. SD's schedule ends at 0.0047 (sigma 14.6),
    /// the cosine schedule at 2.4e-9 (sigma 2e4), a zero-terminal-SNR one at 2^-24 (sigma 4096).
    /// </summary>
    public const double MinAlphaCumprod = 1e-18;
}
