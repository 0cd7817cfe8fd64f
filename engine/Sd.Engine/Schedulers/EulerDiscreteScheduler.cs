using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// Shared sigma machinery of diffusers' Euler/Euler-ancestral/LMS schedulers: float32 timesteps, sigmas interpolated
/// in float64 (np.interp) and stored as float32 with a trailing 0; optionally a ramp (<see cref="SigmaRamp"/>): Karras,
/// exponential, beta, KL-optimal, Align Your Steps, or one on the model's levels (Simple, Normal, SGM Uniform).
/// </summary>
public abstract class SigmaScheduler : Scheduler
{
    protected SigmaScheduler(SchedulerConfig config, TimestepSpacing? spacing, SigmaRamp ramp, string name, ZeroTerminalSnr zeroSnr)
        : base(config, TimestepSpacing.Linspace, spacing, zeroSnr, ramp)
    {
        Name = name;
        TrainSigmas = TrainingSigmas();
    }

    /// <summary>
    /// Whether a Karras ramp takes the config's sigma_min/sigma_max: Euler's does (diffusers' _convert_to_karras
    /// reads them); LMS's keeps the spaced sigmas' ends, as diffusers' LMS ramps without looking at the config. An
    /// exponential or beta ramp always takes them (every class's _convert_to_exponential and _beta are copies of Euler's),
    /// and so does the KL-optimal one (diffusers has none; Sd places it as those).
    /// </summary>
    protected virtual bool KarrasEndsFromConfig => true;

    /// <summary>The sampler's name in messages.</summary>
    protected string Name { get; }

    protected float[] TrainSigmas { get; }
    protected float[] SigmaValues { get; private set; } = [];
    public override IReadOnlyList<float>? Sigmas => SigmaValues;

    /// <summary>The inference steps the run being planned skips (img2img), for <see cref="Arrange"/>: a sampler that
    /// plans its run anew over the steps left (Restart, DPM fast) plans from there.</summary>
    protected int SkippedSteps { get; private set; }

    /// <summary>The schedule's level at the run's first step, before <see cref="Arrange"/>: where a part-way start's
    /// picture is noised, as A1111 noises its img2img to the first of the levels left, however the plan rebuilds it.</summary>
    private float _startLevel;

    protected override void Schedule(int steps, int firstStep)
    {
        // Linspace timesteps stay fractional (np.linspace(..., dtype=np.float32)) and their sigmas are interpolated.
        double[] spaced = SpacedTimesteps(steps, steps);
        var t = new float[steps];
        var interpolated = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            t[i] = (float)spaced[i];
            interpolated[i] = Interp(t[i], TrainSigmas);
        }
        var sigmas = new float[steps + 1];
        if (Ramp != SigmaRamp.Spaced)
        {
            // Unlike DPM++, Euler and LMS ramp between the first and last *spaced* sigmas, so the spacing matters;
            // the timesteps are the (unrounded) training times of the ramp's sigmas. The log table uses libm's logf;
            // numpy's SIMD float32 log is an ulp off on about a fifth of the SD table, which moves these fractional
            // timesteps by up to 1e-4 against an x86 numpy run (DPM++ rounds its Karras timesteps: no change seen for
            // 1..150 steps).
            float[] logSigmas = Array.ConvertAll(TrainSigmas, MathF.Log);
            double[] levels = Ramp == SigmaRamp.Karras && !KarrasEndsFromConfig
                ? SigmaRamps.Karras(interpolated[^1], interpolated[0], steps)
                : RampSigmasWithConfigEnds(Ramp, TrainSigmas, interpolated[^1], interpolated[0], steps, Name);
            for (int i = 0; i < steps; i++)
            {
                sigmas[i] = (float)levels[i];
                double time = RampTime(levels[i], logSigmas);
                t[i] = (float)(Ramp == SigmaRamp.Karras ? KarrasTimestep(time) : time);
            }
        }
        else
        {
            for (int i = 0; i < steps; i++)
            {
                sigmas[i] = (float)interpolated[i];
            }
        }
        sigmas[steps] = 0f;
        if (GapLookback is { } lookback)
        {
            // firstStep counts calls; the levels here are one per inference step.
            RequireFallingSigmas(sigmas, steps, Math.Max(firstStep / Order - lookback, 0), Name);
        }
        // Arrange may refuse the schedule (a sampler that cannot take one of its steps): nothing it reads back is
        // changed before it.
        SkippedSteps = firstStep / Order;
        (float[] callTimesteps, float[] callSigmas) = Arrange(t, sigmas);
        _startLevel = sigmas[SkippedSteps];
        InferenceSteps = steps;
        (TimestepValues, SigmaValues) = (callTimesteps, callSigmas);
        float max = 0f;
        foreach (float s in sigmas)
        {
            max = Math.Max(max, s);
        }
        InitNoiseSigma = Spacing == TimestepSpacing.Leading ? MathF.Sqrt(max * max + 1f) : max;
        OnSetTimesteps();
    }

    /// <summary>
    /// The timestep of a Karras sigma from its fractional training time: kept as it is (KDPM2 rounds it; no class
    /// rounds an exponential or beta ramp's, and KDPM2 leaves the other ramps' (KL-optimal, Align Your Steps and the
    /// model-level ones) unrounded too, as Euler's family does, where the multistep solvers round them).
    /// </summary>
    protected virtual double KarrasTimestep(double t) => t;

    /// <summary>
    /// The per-call timesteps and sigmas from one timestep per inference step and its sigmas (one more, the last 0):
    /// the same for one model call per step; a two-call sampler adds the levels its second calls are made at (Heun's
    /// repeat the next level, the others' lie between the two).
    /// </summary>
    protected virtual (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas) => (timesteps, sigmas);

    /// <summary>
    /// For a sampler that divides by the gaps between noise levels (a multistep solver, DPM++ SDE's noise): how many
    /// levels before a run's first step its coefficients take in. Null for the samplers that never divide by a gap.
    /// </summary>
    protected virtual int? GapLookback => null;

    protected virtual void OnSetTimesteps()
    {
    }

    /// <summary>The noise level the model input of a call is scaled for (KDPM2's second calls run between levels).</summary>
    protected virtual float InputSigma(int stepIndex) => SigmaValues[stepIndex];

    protected override float InputScale(int stepIndex)
    {
        float s = InputSigma(stepIndex);
        return 1f / MathF.Sqrt(s * s + 1f);
    }

    protected override void ScaleInput(int stepIndex, ReadOnlySpan<float> sample, Span<float> destination)
    {
        float s = InputSigma(stepIndex);
        float d = MathF.Sqrt(s * s + 1f);
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = sample[i] / d;
        }
    }

    /// <summary>v_prediction's (scale, denominator) at a level: x0 = output * scale + sample / denominator.</summary>
    protected static (float Scale, float Denominator) VParameters(float sigma)
    {
        float denominator = sigma * sigma + 1f;
        return (-sigma / MathF.Sqrt(denominator), denominator);
    }

    /// <summary>x0 prediction from the model output at sigma (epsilon, v or the sample itself).</summary>
    protected float PredictOriginal(float x, float m, float sigma, float vScale, float vDenom) => Prediction switch
    {
        PredictionType.VPrediction => m * vScale + x / vDenom,
        PredictionType.Sample => m,
        _ => x - sigma * m,
    };

    /// <summary>
    /// k-diffusion's get_ancestral_step (eta 1) in float32 tensor arithmetic: up = min(to, (to^2 (from^2 - to^2) /
    /// from^2) ** 0.5), down = (to^2 - up^2) ** 0.5.
    /// </summary>
    protected static (float Down, float Up) AncestralLevels(float from, float to)
    {
        float up = MathF.Min(to, MathF.Sqrt(to * to * (from * from - to * to) / (from * from)));
        return (MathF.Sqrt(to * to - up * up), up);
    }

    /// <summary>
    /// x0 + sigma*n (Euler-family add_noise), sigma the call's level, or at the run's first call its step's level in the
    /// schedule (the same level but where a plan made anew rebuilt it: Restart's Karras ramp, DPM fast's exp(-(-log))).
    /// </summary>
    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        float sigma = stepIndex == FirstStep ? _startLevel : SigmaValues[stepIndex];
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = original[i] + noise[i] * sigma;
        }
    }
}

/// <summary>diffusers EulerDiscreteScheduler (s_churn 0, linear interpolation, optionally Karras sigmas).</summary>
public sealed class EulerDiscreteScheduler : SigmaScheduler
{
    public EulerDiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "Euler", ZeroTerminalSnr.EndsAtFloor)
    {
        if (config.InterpolationType is not ("linear" or "log_linear"))
        {
            // diffusers raises ValueError for it in set_timesteps.
            throw new ArgumentException($"interpolation_type '{config.InterpolationType}' is not one of linear, log_linear", nameof(config));
        }
        Refuse(config.InterpolationType == "log_linear", Name, "interpolation_type 'log_linear'");
        // Continuous timesteps (0.25 log sigma) replace the discrete ones for v-prediction models only.
        Refuse(config.TimestepType == "continuous" && Prediction == PredictionType.VPrediction, Name, "timestep_type 'continuous'");
    }

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        float sigma = SigmaValues[stepIndex];
        float sigmaHat = sigma * (0f + 1f);
        float dt = SigmaValues[stepIndex + 1] - sigmaHat;
        // v_prediction: model_output * (-sigma / (sigma**2 + 1) ** 0.5) + (sample / (sigma**2 + 1))
        float vDenom = sigma * sigma + 1f;
        float vScale = -sigma / MathF.Sqrt(vDenom);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], sigmaHat, vScale, vDenom);
            float derivative = (x - x0) / sigmaHat;
            sample[i] = x + derivative * dt;
        }
    }
}
