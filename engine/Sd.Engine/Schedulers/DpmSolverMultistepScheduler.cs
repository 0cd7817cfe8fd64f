using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers DPMSolverMultistepScheduler: DPM-Solver++ 2M (midpoint, lower_order_final, final sigma 0), optionally
/// with Karras sigmas, and its stochastic form (algorithm_type "sde-dpmsolver++", A1111's DPM++ 2M SDE), which draws
/// one latent of noise at every step (draw index = step index), the last included. Keeps the previous x0
/// prediction; steps must be visited in order.
/// </summary>
public sealed class DpmSolverMultistepScheduler : Scheduler
{
    private int[] _timesteps = [];
    private float[] _sigmas = [];
    private float[] _prevX0 = [];
    private float[] _x0 = [];
    private readonly string _name;
    private readonly bool _karras;
    private readonly bool _sde;
    private readonly float[] _trainSigmas;

    /// <summary>Whether a step since the schedule was set left its x0 in _prevX0 (diffusers' lower_order_nums > 0).</summary>
    private bool _hasPreviousX0;

    /// <param name="sde">The stochastic solver (sde-dpmsolver++): the step needs its noise draws.</param>
    public DpmSolverMultistepScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, bool karras = false, bool sde = false)
        : base(config, TimestepSpacing.Linspace, spacing, ZeroTerminalSnr.EndsAtFloor)
    {
        _karras = karras;
        _sde = sde;
        _name = sde ? "DPM++ 2M SDE" : "DPM++ 2M";
        _trainSigmas = TrainingSigmas();
        Refuse(config.Thresholding, _name, "thresholding true");
        Refuse(config.UseLuLambdas, _name, "use_lu_lambdas true");
        Refuse(!double.IsNegativeInfinity(config.LambdaMinClipped), _name, $"lambda_min_clipped {config.LambdaMinClipped}");
        Refuse(config.FinalSigmasType != "zero", _name, $"final_sigmas_type '{config.FinalSigmasType}'");
    }

    public override IReadOnlyList<float>? Sigmas => _sigmas;

    protected override void Schedule(int steps, int firstStep)
    {
        // lambda_min_clipped = -inf, so last_timestep = N. Linspace and leading space over steps+1 points and drop the
        // last; trailing is the common one.
        int[] t = DiscreteTimesteps(steps, steps + 1);
        var sigmas = new float[steps + 1];
        if (_karras)
        {
            // The Karras ramp runs over the whole training range whatever the spacing; the timesteps follow it.
            float[] logSigmas = Array.ConvertAll(_trainSigmas, MathF.Log);
            double[] karras = KarrasSigmasWithConfigEnds(_trainSigmas[0], _trainSigmas[^1], steps, _name);
            for (int i = 0; i < steps; i++)
            {
                sigmas[i] = (float)karras[i];
                t[i] = (int)NpRound(SigmaToT(karras[i], logSigmas));
            }
        }
        else
        {
            for (int i = 0; i < steps; i++)
            {
                sigmas[i] = (float)Interp(t[i], _trainSigmas);
            }
        }
        sigmas[steps] = 0f; // final_sigmas_type "zero"
        RequireFallingSigmas(sigmas, steps, firstStep, _name);
        InferenceSteps = steps;
        _hasPreviousX0 = false;
        _timesteps = t;
        _sigmas = sigmas;
        TimestepValues = Array.ConvertAll(t, v => (float)v);
        InitNoiseSigma = 1f;
    }

    private static (float Alpha, float Sigma) AlphaSigma(float sigma)
    {
        float alpha = 1f / MathF.Sqrt(sigma * sigma + 1f);
        return (alpha, sigma * alpha);
    }

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        // diffusers draws the noise before it picks the order, so every step takes one draw; drawn before any state
        // changes, so a failed draw leaves the scheduler as it was.
        float[]? n = _sde ? Draw(noise, stepIndex, sample.Length) : null;
        // The first step taken is first order wherever it starts (img2img starts past index 0): diffusers counts the
        // model outputs it holds, and before the first there is no previous x0.
        bool firstOrder = stepIndex == 0 || !_hasPreviousX0;
        _hasPreviousX0 = true;
        int len = sample.Length;
        if (_x0.Length != len)
        {
            _x0 = new float[len];
            _prevX0 = new float[len];
        }
        int steps = _timesteps.Length;
        bool lowerOrderFinal = stepIndex == steps - 1; // final_sigmas_type zero
        // convert_model_output (dpmsolver++): x0 prediction
        (float alpha, float sigmaT) = AlphaSigma(_sigmas[stepIndex]);
        (_prevX0, _x0) = (_x0, _prevX0);
        float[] m0 = _x0;
        for (int i = 0; i < len; i++)
        {
            m0[i] = Prediction switch
            {
                PredictionType.VPrediction => alpha * sample[i] - sigmaT * modelOutput[i],
                PredictionType.Sample => modelOutput[i],
                _ => (sample[i] - sigmaT * modelOutput[i]) / alpha,
            };
        }
        (float alphaT, float sT) = AlphaSigma(_sigmas[stepIndex + 1]);
        (float alphaS0, float sS0) = AlphaSigma(_sigmas[stepIndex]);
        float lambdaT = MathF.Log(alphaT) - MathF.Log(sT);
        float lambdaS0 = MathF.Log(alphaS0) - MathF.Log(sS0);
        float h = lambdaT - lambdaS0;
        float invR0 = 0f;
        float[] m1 = _prevX0;
        if (!(firstOrder || lowerOrderFinal))
        {
            (float alphaS1, float sS1) = AlphaSigma(_sigmas[stepIndex - 1]);
            float lambdaS1 = MathF.Log(alphaS1) - MathF.Log(sS1);
            invR0 = 1f / ((lambdaS0 - lambdaS1) / h);
        }
        bool secondOrder = !(firstOrder || lowerOrderFinal);
        if (n is not null)
        {
            // x_t = (s_t / s_s e^-h) x + a_t (1 - e^-2h) (D0 + D1 / 2) + s_t sqrt(1 - e^-2h) noise, D1 = (m0 - m1) / r0.
            float decay = sT / sS0 * MathF.Exp(-h);
            float gain = alphaT * (1f - MathF.Exp(-2f * h));
            float halfGain = 0.5f * gain;
            float spread = sT * MathF.Sqrt(1f - MathF.Exp(-2f * h));
            for (int i = 0; i < len; i++)
            {
                float x = decay * sample[i] + gain * m0[i];
                if (secondOrder) x += halfGain * (invR0 * (m0[i] - m1[i]));
                sample[i] = x + spread * n[i];
            }
            return;
        }
        // x_t = (s_t / s_s) x - a_t (e^-h - 1) (D0 + D1 / 2).
        float ratio = sT / sS0;
        float coeff = alphaT * (MathF.Exp(-h) - 1f);
        float half = 0.5f * coeff;
        for (int i = 0; i < len; i++)
        {
            float x = ratio * sample[i] - coeff * m0[i];
            if (secondOrder) x -= half * (invR0 * (m0[i] - m1[i]));
            sample[i] = x;
        }
    }

    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        (float alpha, float sigma) = AlphaSigma(_sigmas[stepIndex]);
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = alpha * original[i] + sigma * noise[i];
        }
    }
}
