using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>How inference timesteps are spread over the training schedule (diffusers' <c>timestep_spacing</c>).</summary>
public enum TimestepSpacing { Leading, Linspace, Trailing }

/// <summary>What the UNet predicts (diffusers' <c>prediction_type</c>): the noise, v, or the clean sample x0.</summary>
public enum PredictionType { Epsilon, VPrediction, Sample }

/// <summary>
/// A diffusion sampler matching diffusers 0.27.2. Calls are step-index based: <see cref="SetTimesteps"/> once, then
/// <see cref="Step"/> for stepIndex FirstStep..StepCount-1 in order (multistep schedulers keep history between calls).
/// Scalar coefficients follow diffusers' dtypes: float32 tensor math for per-step scalars, float64 (numpy) where the
/// reference computes sigma tables and timesteps in numpy.
/// Options diffusers itself refuses (an unknown spacing or prediction type, "sample" for PNDM or Euler ancestral)
/// throw <see cref="ArgumentException"/>, and so do schedules whose float32 arithmetic would divide by zero or
/// overflow where diffusers runs into NaN (repeated noise levels for multistep solvers, an unclipped epsilon x0 at
/// zero signal, Karras ends out of range); options diffusers has but Sd does not implement throw
/// <see cref="NotSupportedException"/>.
/// </summary>
public abstract class Scheduler
{
    /// <summary>What diffusers' class for a scheduler does with the config's rescale_betas_zero_snr.</summary>
    protected enum ZeroTerminalSnr
    {
        /// <summary>The class has no such setting, so diffusers ignores the key (PNDM, LMS).</summary>
        NotASetting,

        /// <summary>The rescaled schedule ends at alphas_cumprod 0: pure noise, no signal (DDIM, LCM).</summary>
        EndsAtZero,

        /// <summary>The rescaled schedule's end is raised to <see cref="NoiseSchedule.ZeroSnrFloor"/>, so the first
        /// noise level is finite (Euler, Euler ancestral, DPM-Solver).</summary>
        EndsAtFloor,
    }

    protected Scheduler(SchedulerConfig config, TimestepSpacing defaultSpacing, TimestepSpacing? spacing, ZeroTerminalSnr zeroSnr, SigmaRamp ramp = SigmaRamp.Spaced)
    {
        Config = config;
        Ramp = ramp;
        NumTrainTimesteps = config.NumTrainTimesteps;
        Spacing = spacing ?? ParseSpacing(config.TimestepSpacing) ?? defaultSpacing;
        Prediction = config.PredictionType switch
        {
            "epsilon" => PredictionType.Epsilon,
            "v_prediction" => PredictionType.VPrediction,
            "sample" => PredictionType.Sample,
            _ => throw new ArgumentException($"prediction_type '{config.PredictionType}' is not one of epsilon, v_prediction, sample", nameof(config)),
        };
        bool rescaled = config.RescaleBetasZeroSnr && zeroSnr != ZeroTerminalSnr.NotASetting;
        AlphasCumprod = NoiseSchedule.AlphasCumprod(config, rescaled);
        if (rescaled && zeroSnr == ZeroTerminalSnr.EndsAtFloor)
        {
            AlphasCumprod[^1] = NoiseSchedule.ZeroSnrFloor;
        }
    }

    public SchedulerConfig Config { get; }
    public int NumTrainTimesteps { get; }
    public TimestepSpacing Spacing { get; }
    public PredictionType Prediction { get; }

    /// <summary>alphas_cumprod over the training steps, float32 as diffusers stores it.</summary>
    public float[] AlphasCumprod { get; }

    /// <summary>Inference steps given to the last <see cref="SetTimesteps"/>.</summary>
    public int InferenceSteps { get; protected set; }

    protected float[] TimestepValues { get; set; } = [];

    /// <summary>The UNet timestep of each step (integer-valued for DDIM/PNDM/DPM/LCM).</summary>
    public IReadOnlyList<float> Timesteps => TimestepValues;

    /// <summary>Number of UNet calls (PNDM with 6 steps: 7).</summary>
    public int StepCount => TimestepValues.Length;

    public float InitNoiseSigma { get; protected set; } = 1f;

    /// <summary>Sigmas (Karras/EDM style, one more than the steps, last 0) for sigma-based schedulers; null otherwise.</summary>
    public virtual IReadOnlyList<float>? Sigmas => null;

    /// <summary>Multiplier for the UNet input (1, or 1/sqrt(sigma^2+1)).</summary>
    public float ScaleModelInput(int stepIndex)
    {
        CheckStepIndex(stepIndex);
        return InputScale(stepIndex);
    }

    /// <summary>Writes the UNet input exactly as diffusers' scale_model_input (a division for sigma schedulers).</summary>
    public void ScaleModelInput(int stepIndex, ReadOnlySpan<float> sample, Span<float> destination)
    {
        CheckStepIndex(stepIndex);
        CheckLength(sample.Length, destination.Length, nameof(sample));
        ScaleInput(stepIndex, sample, destination);
    }

    /// <summary><see cref="ScaleModelInput(int)"/> for a checked step index.</summary>
    protected virtual float InputScale(int stepIndex) => 1f;

    /// <summary><see cref="ScaleModelInput(int, ReadOnlySpan{float}, Span{float})"/> for checked arguments.</summary>
    protected virtual void ScaleInput(int stepIndex, ReadOnlySpan<float> sample, Span<float> destination)
    {
        sample.CopyTo(destination);
    }

    /// <summary>The step index runs start at, as given to <see cref="SetTimesteps"/>; <see cref="Step"/> refuses earlier ones.</summary>
    public int FirstStep { get; private set; }

    /// <summary>
    /// diffusers' scheduler order: model calls per inference step where a run may start, so img2img skipping k
    /// inference steps starts at step index k x Order (2 for the samplers whose steps take two calls: Heun, DPM2, DPM2 a,
    /// DPM++ 2S a, DPM++ SDE, Restart; 1 otherwise).
    /// </summary>
    public virtual int Order => 1;

    /// <summary>Where the scheduler puts its noise levels: its named ramp, else its config's; Spaced for those without ramps.</summary>
    public SigmaRamp Ramp { get; }

    /// <summary>
    /// Sets the schedule of <paramref name="steps"/> inference steps for a run whose first <see cref="Step"/> is
    /// <paramref name="firstStep"/> (img2img and inpainting below strength 1 skip the first steps: diffusers'
    /// set_begin_index, a multiple of <see cref="Order"/>). Throws, leaving the scheduler as it was, when the steps
    /// cannot be run from there.
    /// </summary>
    public void SetTimesteps(int steps, int firstStep = 0)
    {
        CheckSteps(steps);
        if ((uint)firstStep > (uint)(steps * Order) || firstStep % Order != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(firstStep), firstStep, Order == 1
                ? $"the first step must be in 0..{steps}"
                : $"the first step must be a multiple of {Order} in 0..{steps * Order}: each inference step takes {Order} calls, and a run starts at an inference step's first");
        }
        Schedule(steps, firstStep);
        FirstStep = firstStep;
    }

    /// <summary><see cref="SetTimesteps"/> for checked arguments: builds the schedule and resets the step history.</summary>
    protected abstract void Schedule(int steps, int firstStep);

    /// <summary>One denoising step, in place on <paramref name="sample"/>. <paramref name="noise"/>(drawIndex) gives a
    /// latent-sized array of standard normals for the stochastic schedulers: Euler a, DPM2 a, DPM++ 2S a, LCM, DPM++ 2M
    /// SDE, DPM++ 3M SDE, DPM++ SDE, Restart (draw index = step index; DPM++ SDE draws at both calls of a step, Restart
    /// after the calls its restarts follow).</summary>
    public abstract void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise);

    /// <summary>Forward diffusion to the timestep of <paramref name="stepIndex"/> (img2img/inpaint).</summary>
    public void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        CheckStepIndex(stepIndex);
        CheckLength(original.Length, destination.Length, nameof(original));
        CheckLength(noise.Length, destination.Length, nameof(noise));
        Noise(original, noise, stepIndex, destination);
    }

    /// <summary><see cref="AddNoise"/> for checked arguments.</summary>
    protected abstract void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination);

    /// <summary>
    /// alpha x0 + sigma n: add_noise of the samplers on alpha and sigma (DDIM, PNDM, LCM at sqrt(a) and sqrt(1 - a),
    /// DPM-Solver and UniPC at a level's alpha and sigma).
    /// </summary>
    protected static void Blend(float alpha, float sigma, ReadOnlySpan<float> original, ReadOnlySpan<float> noise, Span<float> destination)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = alpha * original[i] + sigma * noise[i];
        }
    }

    /// <summary>
    /// The scheduler called <paramref name="name"/>: ddim, pndm, lcm, unipc-a1111 (A1111's UniPC), or a sigma sampler
    /// (euler, euler-a, heun, lms, dpm2, dpm2-a, dpm++-2m, dpm++-2m-sde, dpm++-2m-sde-heun, dpm++-sde, dpm++-2s-a,
    /// dpm++-3m-sde, unipc, restart, dpm-fast), which takes a "-karras",
    /// "-exponential", "-beta", "-kl-optimal", "-ays", "-simple", "-normal" or "-sgm-uniform" suffix for that ramp
    /// (<see cref="SigmaRamp"/>); without one, the config's use_karras_sigmas, use_exponential_sigmas or
    /// use_beta_sigmas chooses (but for euler-a, as diffusers' Euler ancestral ignores them).
    /// </summary>
    public static Scheduler Create(string name, SchedulerConfig config, TimestepSpacing? spacing = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(config);
        (string key, SigmaRamp? named) = SplitName(name);
        // DDIM, PNDM, LCM and A1111's UniPC take no sigma ramp; the others take the named one, else the config's, whose
        // flags are checked either way (diffusers refuses more than one whatever runs).
        SigmaRamp NamedOrConfigured()
        {
            SigmaRamp configured = RampOf(config, key);
            return named ?? configured;
        }
        return (key, named) switch
        {
            ("ddim", null) => new DdimScheduler(config, spacing),
            ("pndm", null) => new PndmScheduler(config, spacing),
            // The config's ramp flags are not Euler a's (diffusers ignores them), a named ramp is (A1111's Euler a takes any).
            ("euler-a", _) => new EulerAncestralScheduler(config, spacing, named ?? SigmaRamp.Spaced),
            ("lcm", null) => new LcmScheduler(config, spacing),
            ("unipc-a1111", null) => new A1111UniPcScheduler(config, spacing),
            ("euler", _) => new EulerDiscreteScheduler(config, spacing, NamedOrConfigured()),
            ("dpm++-2m", _) => new DpmSolverMultistepScheduler(config, spacing, NamedOrConfigured()),
            ("dpm++-2m-sde", _) => new DpmSolverMultistepScheduler(config, spacing, NamedOrConfigured(), sde: true),
            ("dpm++-2m-sde-heun", _) => new DpmSolverMultistepScheduler(config, spacing, NamedOrConfigured(), sde: true, heun: true),
            ("unipc", _) => new UniPcMultistepScheduler(config, spacing, NamedOrConfigured()),
            ("heun", _) => new HeunDiscreteScheduler(config, spacing, NamedOrConfigured()),
            ("dpm2", _) => new KDpm2DiscreteScheduler(config, spacing, NamedOrConfigured()),
            ("dpm2-a", _) => new KDpm2AncestralDiscreteScheduler(config, spacing, NamedOrConfigured()),
            ("dpm++-sde", _) => new DpmPlusPlusSdeScheduler(config, spacing, NamedOrConfigured()),
            ("dpm++-3m-sde", _) => new DpmPlusPlus3MSdeScheduler(config, spacing, NamedOrConfigured()),
            ("dpm++-2s-a", _) => new DpmPlusPlus2SAncestralScheduler(config, spacing, NamedOrConfigured()),
            ("lms", _) => new LmsDiscreteScheduler(config, spacing, NamedOrConfigured()),
            ("restart", _) => new RestartScheduler(config, spacing, NamedOrConfigured()),
            ("dpm-fast", _) => new DpmFastScheduler(config, spacing, NamedOrConfigured()),
            _ => throw new ArgumentException($"unknown scheduler '{name}' (ddim, pndm, lcm, unipc-a1111; euler, euler-a, heun, lms, dpm2, dpm2-a, dpm++-2m, dpm++-2m-sde, dpm++-2m-sde-heun, dpm++-sde, dpm++-2s-a, dpm++-3m-sde, unipc, restart, dpm-fast, each also with -karras, -exponential, -beta, -kl-optimal, -ays, -simple, -normal or -sgm-uniform)", nameof(name)),
        };
    }

    private static readonly (string Suffix, SigmaRamp Ramp)[] RampSuffixes =
    [
        ("-karras", SigmaRamp.Karras), ("-exponential", SigmaRamp.Exponential), ("-beta", SigmaRamp.Beta),
        ("-kl-optimal", SigmaRamp.KlOptimal), ("-ays", SigmaRamp.AlignYourSteps), ("-simple", SigmaRamp.Simple),
        ("-normal", SigmaRamp.Normal), ("-sgm-uniform", SigmaRamp.SgmUniform),
    ];

    /// <summary>
    /// The name <see cref="Create"/> reads as <paramref name="solver"/> on <paramref name="ramp"/>: the solver as it
    /// is for <see cref="SigmaRamp.Spaced"/> (its own levels, or the config's ramp), else with the ramp's suffix
    /// ("dpm++-2m" on Karras gives "dpm++-2m-karras").
    /// </summary>
    public static string NameOf(string solver, SigmaRamp ramp)
    {
        ArgumentNullException.ThrowIfNull(solver);
        foreach ((string suffix, SigmaRamp each) in RampSuffixes)
        {
            if (each == ramp)
            {
                return solver + suffix;
            }
        }
        return ramp == SigmaRamp.Spaced ? solver : throw new ArgumentOutOfRangeException(nameof(ramp), ramp, "not a sigma ramp");
    }

    /// <summary>A scheduler name's solver, lower-case without its ramp suffix ("DPM++-2M-Karras" gives "dpm++-2m"), as <see cref="Create"/> reads it.</summary>
    public static string SolverOf(string name) => SplitName(name).Solver;

    private static (string Solver, SigmaRamp? Named) SplitName(string name)
    {
        string key = name.ToLowerInvariant();
        foreach ((string suffix, SigmaRamp ramp) in RampSuffixes)
        {
            if (key.EndsWith(suffix, StringComparison.Ordinal))
            {
                return (key[..^suffix.Length], ramp);
            }
        }
        return (key, null);
    }

    /// <summary>The ramp a config asks for: use_karras_sigmas, use_exponential_sigmas or use_beta_sigmas (diffusers allows one).</summary>
    private static SigmaRamp RampOf(SchedulerConfig config, string scheduler)
    {
        bool karras = config.UseKarrasSigmas ?? false;
        int set = (karras ? 1 : 0) + (config.UseExponentialSigmas ? 1 : 0) + (config.UseBetaSigmas ? 1 : 0);
        if (set > 1)
        {
            throw new NotSupportedException($"{scheduler}: the scheduler config sets more than one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas; diffusers allows only one");
        }
        return karras ? SigmaRamp.Karras : config.UseExponentialSigmas ? SigmaRamp.Exponential : config.UseBetaSigmas ? SigmaRamp.Beta : SigmaRamp.Spaced;
    }

    /// <summary>
    /// Throws NotSupportedException when the config holds <paramref name="setting"/>, which diffusers' class for
    /// <paramref name="scheduler"/> applies and Sd does not implement: running without it would silently differ.
    /// </summary>
    protected static void Refuse(bool holds, string scheduler, string setting)
    {
        if (holds)
        {
            throw new NotSupportedException($"{scheduler}: the scheduler config's {setting} is not supported (diffusers applies it; Sd does not implement it)");
        }
    }

    /// <summary>
    /// Refuses the flow-matching sigmas of later diffusers versions, which the multistep solvers' classes read there
    /// and Sd does not run: they replace the spaced sigmas, so running without them would differ.
    /// </summary>
    protected static void RefuseFlowSigmas(SchedulerConfig config, string scheduler) =>
        Refuse(config.UseFlowSigmas, scheduler, "use_flow_sigmas true");

    /// <summary>
    /// diffusers _convert_to_karras / _exponential / _beta for Euler and DPM-Solver: the config's sigma_min and
    /// sigma_max where it sets them (every key of a scheduler config reaches the class's config, so DPM-Solver reads
    /// them too), else the given ends; the KL-optimal ramp takes the same ends. Throws (ArgumentException) unless the
    /// ramp runs down within the levels float32 sampling reaches. Align Your Steps has fixed levels and takes no ends,
    /// nor does Simple, which picks the model's levels; Normal and SGM Uniform span the model's whole range, or the
    /// config's ends, whatever the spacing, as A1111 spans its model's (or its settings' sigma_min and sigma_max).
    /// <paramref name="trainingSigmas"/> is the scheduler's table (<see cref="TrainingSigmas"/>), held by the caller.
    /// </summary>
    protected double[] RampSigmasWithConfigEnds(SigmaRamp ramp, float[] trainingSigmas, double sigmaMin, double sigmaMax, int steps, string scheduler)
    {
        switch (ramp)
        {
            case SigmaRamp.AlignYourSteps:
                return SigmaRamps.AlignYourSteps(steps);
            case SigmaRamp.Simple:
                return SigmaRamps.Of(ramp, 0, 0, steps, trainingSigmas);
            case SigmaRamp.Normal or SigmaRamp.SgmUniform:
                (sigmaMin, sigmaMax) = (trainingSigmas[0], trainingSigmas[^1]);
                break;
        }
        double min = Config.SigmaMin ?? sigmaMin, max = Config.SigmaMax ?? sigmaMax;
        if (!(min >= NoiseSchedule.MinSigma && max >= min && max <= NoiseSchedule.MaxSigma))
        {
            // A loaded config's ends were checked to lie in that range; one built in code, or ends that cross, land here.
            throw new ArgumentException($"{scheduler}: {ramp} sigmas ramp from sigma_max down to sigma_min, noise levels with {NoiseSchedule.SigmaText(NoiseSchedule.MaxSigma)} >= sigma_max >= sigma_min >= {NoiseSchedule.SigmaText(NoiseSchedule.MinSigma)}; " +
                $"got sigma_max {max} and sigma_min {min} (the scheduler config's sigma_min {Config.SigmaMin?.ToString() ?? "unset"}, sigma_max {Config.SigmaMax?.ToString() ?? "unset"})", "config");
        }
        return SigmaRamps.Of(ramp, min, max, steps, trainingSigmas);
    }

    /// <summary>
    /// Throws unless every timestep a run reaches (from <paramref name="firstStep"/>) has signal left for an
    /// epsilon-predicting model whose x0 is not clipped: a zero-terminal-SNR schedule's last training step has
    /// alphas_cumprod 0 in DDIM and LCM, where x0 = (x - sqrt(1 - a) eps) / sqrt(a) is infinite. Clipped (clip_sample,
    /// DDIM's default) it becomes +-clip_sample_range and the run goes on, as in diffusers; unclipped, diffusers'
    /// latents turn to NaN. <paramref name="remedy"/> says what else avoids the step.
    /// </summary>
    protected void RequireSignalForEpsilon(int[] timesteps, int firstStep, float clip, string scheduler, string remedy)
    {
        if (Prediction != PredictionType.Epsilon || float.IsFinite(clip))
        {
            return;
        }
        for (int i = firstStep; i < timesteps.Length; i++)
        {
            if (AlphasCumprod[timesteps[i]] == 0f)
            {
                throw new ArgumentException($"{scheduler}: step {i + 1} runs at timestep {timesteps[i]}, where the zero-terminal-SNR schedule (rescale_betas_zero_snr) leaves no signal, and an epsilon-predicting model's unclipped x0 divides by it; " +
                    $"zero-terminal-SNR models predict v (prediction_type v_prediction); else turn clip_sample on or {remedy}", "config");
            }
        }
    }

    protected void CheckSteps(int steps)
    {
        if (steps < 1 || steps > NumTrainTimesteps)
        {
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"steps must be in 1..{NumTrainTimesteps}");
        }
    }

    /// <summary>
    /// Throws unless the noise levels fall strictly from step to step, from <paramref name="from"/> to the final 0. A
    /// multistep solver (<paramref name="solver"/>: DPM++ 2M, LMS, DPM++ 3M SDE) divides by the gaps between successive
    /// levels, and DPM++ SDE's noise by their square roots, so a repeated level turns the latents into NaN, in diffusers
    /// and k-diffusion too. Levels repeat when the schedule is denser than the training timesteps: 1000 DPM++ steps
    /// space 1001 points over 999 timesteps and round two to 500; leading spacing with a large steps_offset clamps
    /// several to the last training sigma. A run that starts (img2img) past the repeat, and past the levels the solver
    /// looks back on, never divides by it.
    /// </summary>
    protected void RequireFallingSigmas(ReadOnlySpan<float> sigmas, int steps, int from, string solver)
    {
        for (int i = from; i < steps; i++)
        {
            if (!(sigmas[i] > sigmas[i + 1]))
            {
                throw new ArgumentOutOfRangeException(nameof(steps), steps,
                    $"{steps} steps with timestep_spacing {Spacing.ToString().ToLowerInvariant()} (steps_offset {Config.StepsOffset}, {NumTrainTimesteps} training timesteps) give steps {i + 1} and {i + 2} the noise levels {sigmas[i]} and {sigmas[i + 1]}; {solver} needs falling levels, as it divides by their differences: use fewer steps{(from > 0 ? " or start later (a lower img2img strength)" : "")}");
            }
        }
    }

    protected void CheckStep(int stepIndex, int length, int sampleLength)
    {
        CheckStepIndex(stepIndex);
        if (stepIndex < FirstStep)
        {
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"the schedule was set for runs starting at step index {FirstStep}");
        }
        if (length != sampleLength)
        {
            throw new ArgumentException($"model output has {length} values, sample has {sampleLength}");
        }
    }

    private void CheckStepIndex(int stepIndex)
    {
        if ((uint)stepIndex >= (uint)StepCount)
        {
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, StepCount == 0
                ? "no schedule yet: call SetTimesteps first"
                : $"step index must be in 0..{StepCount - 1}");
        }
    }

    private static void CheckLength(int length, int destinationLength, string name)
    {
        if (length != destinationLength)
        {
            throw new ArgumentException($"{name} has {length} values, the destination {destinationLength}", name);
        }
    }

    /// <summary>
    /// torch.expm1 in float32: e^x - 1, in double so that nothing cancels near 0 (-1 at -inf). .NET's float.ExpM1 is
    /// exp(x) - 1 in float, which loses the low bits of small arguments.
    /// </summary>
    protected static float ExpM1(float x) => (float)(Math.Abs(x) < 1e-5 ? x + 0.5 * x * (double)x : Math.Exp(x) - 1.0);

    protected static float[] Draw(Func<int, float[]>? noise, int drawIndex, int length)
    {
        if (noise is null)
        {
            throw new ArgumentNullException(nameof(noise), "this scheduler draws noise: a noise source is required");
        }
        float[] n = noise(drawIndex);
        if (n.Length != length)
        {
            throw new ArgumentException($"noise draw {drawIndex} has {n.Length} values, the latents have {length}");
        }
        return n;
    }

    private static TimestepSpacing? ParseSpacing(string? value) => value switch
    {
        null => null,
        "leading" => TimestepSpacing.Leading,
        "linspace" => TimestepSpacing.Linspace,
        "trailing" => TimestepSpacing.Trailing,
        _ => throw new ArgumentException($"timestep_spacing '{value}' is not one of leading, linspace, trailing"),
    };

    /// <summary>Training sigmas sqrt((1-a)/a) computed in float32 as diffusers does with torch.</summary>
    public float[] TrainingSigmas()
    {
        var sigmas = new float[NumTrainTimesteps];
        for (int i = 0; i < sigmas.Length; i++)
        {
            float a = AlphasCumprod[i];
            sigmas[i] = MathF.Sqrt((1f - a) / a);
        }
        return sigmas;
    }

    /// <summary>np.interp(x, arange(len(fp)), fp) in float64.</summary>
    internal static double Interp(double x, float[] fp)
    {
        int last = fp.Length - 1;
        if (x <= 0)
        {
            return fp[0];
        }
        if (x >= last)
        {
            return fp[last];
        }
        int j = (int)Math.Floor(x);
        if (x == j)
        {
            return fp[j];
        }
        double slope = ((double)fp[j + 1] - fp[j]) / 1.0;
        return slope * (x - j) + fp[j];
    }

    /// <summary>np.round (half to even).</summary>
    internal static double NpRound(double x) => Math.Round(x, MidpointRounding.ToEven);

    /// <summary>np.linspace(start, stop, num) in float64.</summary>
    internal static double[] NpLinspace(double start, double stop, int num, bool endpoint = true)
    {
        var y = new double[num];
        int div = endpoint ? num - 1 : num;
        double step = div > 0 ? (stop - start) / div : 0;
        for (int i = 0; i < num; i++)
        {
            y[i] = i * step + start;
        }
        if (endpoint && num > 1)
        {
            y[num - 1] = stop;
        }
        return y;
    }

    /// <summary>
    /// Descending timesteps per timestep_spacing as diffusers' set_timesteps spaces them, linspace values not yet
    /// rounded (DDIM/PNDM/DPM round them, Euler/LMS keep them as float32). <paramref name="points"/> is how many the
    /// schedule is spaced over before the last ones are dropped: DPM++ spaces linspace and leading over steps+1 and
    /// keeps the first <paramref name="steps"/>; everything else passes steps.
    /// </summary>
    internal double[] SpacedTimesteps(int steps, int points)
    {
        int n = NumTrainTimesteps;
        var t = new double[steps];
        switch (Spacing)
        {
            case TimestepSpacing.Linspace:
                {
                    double[] lin = NpLinspace(0, n - 1, points);
                    for (int i = 0; i < steps; i++)
                    {
                        t[i] = lin[points - 1 - i];
                    }
                    break;
                }
            case TimestepSpacing.Leading:
                {
                    int ratio = n / points;
                    for (int i = 0; i < steps; i++)
                    {
                        t[i] = (points - 1 - i) * ratio + Config.StepsOffset;
                    }
                    break;
                }
            default:
                {
                    // np.arange(n, 0, -n/steps).round() - 1. numpy fills arange as start + i*delta with delta re-derived
                    // as (start + step) - start, which is not n/steps to the last bit, so rounding n - i*n/steps instead
                    // lands on the other side of exact halves (48 steps: 937.5 is 937.49999... in numpy, timestep 936).
                    // For some counts (61, 103, ...) numpy's length comes out one longer, ending in a timestep of -1;
                    // that is a diffusers bug, not copied: the schedule keeps `steps` timesteps.
                    double delta = (n - (double)n / steps) - n;
                    for (int i = 0; i < steps; i++)
                    {
                        t[i] = NpRound(n + i * delta) - 1;
                    }
                    break;
                }
        }
        return t;
    }

    /// <summary>
    /// <see cref="DiscreteTimesteps"/> for a scheduler that indexes the training tables by timestep (DDIM, PNDM).
    /// Leading spacing with an offset begins at timestep n when steps = n (SD 1.x: 1000 steps, steps_offset 1), one
    /// past the tables; diffusers fails there with an IndexError, Sd refuses the step count. (Euler, LMS and DPM++
    /// interpolate their sigmas, which clamps, as diffusers' np.interp does.)
    /// </summary>
    internal int[] IndexedTimesteps(int steps, int points)
    {
        int[] t = DiscreteTimesteps(steps, points);
        if (t[0] > NumTrainTimesteps - 1)
        {
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"{steps} steps with timestep_spacing {Spacing.ToString().ToLowerInvariant()} and steps_offset {Config.StepsOffset} begin at timestep {t[0]}, past the last of the {NumTrainTimesteps} training timesteps");
        }
        return t;
    }

    /// <summary>Integer (np.round, int64) timesteps, descending, for DDIM/PNDM (before PNDM's reordering) and DPM++.</summary>
    internal int[] DiscreteTimesteps(int steps, int points) =>
        Array.ConvertAll(SpacedTimesteps(steps, points), v => (int)NpRound(v));

    /// <summary>
    /// The training time of a level of this scheduler's ramp: diffusers' _sigma_to_t (<see cref="SigmaToT"/>), but for
    /// the ramps on the model's levels k-diffusion's float32 sigma_to_t of the float32 level, as A1111 feeds its model
    /// (so each of Simple's levels maps back to exactly its own training timestep).
    /// </summary>
    protected double RampTime(double level, float[] logSigmas) => SigmaRamps.OnModelLevels(Ramp)
        ? SigmaRamps.TrainingTime((float)level, logSigmas)
        : SigmaToT(level, logSigmas);

    /// <summary>
    /// diffusers _sigma_to_t: the fractional training timestep of a sigma by log-sigma interpolation. numpy 1.x
    /// value-based casting keeps the arithmetic against the float32 log table in float32 (the float64 log sigma is
    /// cast down, and 1 - w is a float32 array), and only the final blend with the integer indices in float64.
    /// </summary>
    internal static double SigmaToT(double sigma, float[] logSigmas)
    {
        (int low, float w) = SigmaToTInterpolation(sigma, logSigmas);
        return (double)(1f - w) * low + (double)w * (low + 1);
    }

    /// <summary>
    /// _sigma_to_t's interpolation: the last table index whose log sigma the level's is at or above (at most the
    /// second last) and the float32 weight toward the next index.
    /// </summary>
    internal static (int Low, float Weight) SigmaToTInterpolation(double sigma, float[] logSigmas) =>
        LogSigmaToTInterpolation((float)Math.Log(Math.Max(sigma, 1e-10)), logSigmas);

    /// <summary>The fractional timestep of an interpolation as torch blends it, in float32: (1 - w) low + w (low + 1).</summary>
    internal static float BlendedTime((int Low, float Weight) at) => (1f - at.Weight) * at.Low + at.Weight * (at.Low + 1);

    /// <summary>
    /// <see cref="SigmaToTInterpolation"/> of a level whose float32 log is <paramref name="logSigma"/> (its own name:
    /// as an overload, a float sigma would bind to it and be read as a log).
    /// </summary>
    internal static (int Low, float Weight) LogSigmaToTInterpolation(float logSigma, float[] logSigmas)
    {
        if (logSigmas.Length < 2)
        {
            throw new ArgumentException($"Karras sigmas map back to timesteps between two training sigmas; the scheduler config has {logSigmas.Length} training timestep(s)", nameof(logSigmas));
        }
        int low = 0;
        for (int i = 0; i < logSigmas.Length; i++)
        {
            if (logSigma - logSigmas[i] >= 0)
            {
                low = i;
            }
        }
        low = Math.Min(low, logSigmas.Length - 2);
        float lo = logSigmas[low], hi = logSigmas[low + 1];
        return (low, Math.Clamp((lo - logSigma) / (lo - hi), 0f, 1f));
    }
}
