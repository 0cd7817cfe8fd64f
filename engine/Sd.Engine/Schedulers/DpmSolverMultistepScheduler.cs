using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers DPMSolverMultistepScheduler: DPM-Solver++ 2M (midpoint, lower_order_final, final sigma 0), optionally
/// with Karras sigmas, and its stochastic form (algorithm_type "sde-dpmsolver++", A1111's DPM++ 2M SDE), which draws
/// one latent of noise at every step (draw index = step index), the last included, also with solver_type "heun"
/// (A1111's DPM++ 2M SDE Heun). Keeps the previous x0 prediction; steps must be visited in order.
/// </summary>
public sealed class DpmSolverMultistepScheduler : MultistepSigmaScheduler
{
    private float[] _prevX0 = [];
    private float[] _x0 = [];
    private readonly bool _sde, _heun;

    /// <summary>Whether a step since the schedule was set left its x0 in _prevX0 (diffusers' lower_order_nums > 0).</summary>
    private bool _hasPreviousX0;

    /// <param name="sde">The stochastic solver (sde-dpmsolver++): the step needs its noise draws.</param>
    /// <param name="heun">The stochastic solver's second-order term weighted as solver_type "heun" weights it, not "midpoint".</param>
    public DpmSolverMultistepScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced, bool sde = false, bool heun = false)
        : base(config, spacing, ramp, !sde ? "DPM++ 2M" : heun ? "DPM++ 2M SDE Heun" : "DPM++ 2M SDE")
    {
        if (heun && !sde)
        {
            throw new ArgumentException("the Heun solver type is the stochastic solver's here (A1111's DPM++ 2M SDE Heun)", nameof(heun));
        }
        _sde = sde;
        _heun = heun;
        Refuse(config.UseLuLambdas, Name, "use_lu_lambdas true");
        Refuse(!double.IsNegativeInfinity(config.LambdaMinClipped), Name, $"lambda_min_clipped {config.LambdaMinClipped}");
    }

    protected override void ResetHistory() => _hasPreviousX0 = false;

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
        int steps = StepCount;
        bool lowerOrderFinal = stepIndex == steps - 1; // final_sigmas_type zero
        // convert_model_output (dpmsolver++): x0 prediction
        (_prevX0, _x0) = (_x0, _prevX0);
        float[] m0 = _x0;
        PredictX0(modelOutput, sample, stepIndex, m0);
        (float alphaT, float sT) = AlphaSigma(StepSigmas[stepIndex + 1]);
        float sS0 = AlphaSigma(StepSigmas[stepIndex]).Sigma;
        float lambdaS0 = Lambda(stepIndex);
        float h = Lambda(stepIndex + 1) - lambdaS0;
        bool secondOrder = !(firstOrder || lowerOrderFinal);
        float invR0 = secondOrder ? 1f / ((lambdaS0 - Lambda(stepIndex - 1)) / h) : 0f;
        float[] m1 = _prevX0;
        if (n is not null)
        {
            // x_t = (s_t / s_s e^-h) x + a_t (1 - e^-2h) D0 + c D1 + s_t sqrt(1 - e^-2h) noise, D1 = (m0 - m1) / r0,
            // c = a_t (1 - e^-2h) / 2 (midpoint) or a_t ((1 - e^-2h) / (-2h) + 1) (heun), in diffusers' float32 order.
            float decay = sT / sS0 * MathF.Exp(-h);
            float gain = alphaT * (1f - MathF.Exp(-2f * h));
            float d1Gain = _heun ? alphaT * ((1f - MathF.Exp(-2f * h)) / (-2f * h) + 1f) : 0.5f * gain;
            float spread = sT * MathF.Sqrt(1f - MathF.Exp(-2f * h));
            for (int i = 0; i < len; i++)
            {
                float x = decay * sample[i] + gain * m0[i];
                if (secondOrder) x += d1Gain * (invR0 * (m0[i] - m1[i]));
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
}
