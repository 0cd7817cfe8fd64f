using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers UniPCMultistepScheduler as SD runs it (solver_order 2, bh2, predict_x0, lower_order_final, no disabled
/// corrector, final sigma 0): each step first corrects the sample the last step predicted with the model output at
/// it (UniC), then predicts the next (UniP), one model call per step. Optionally with Karras sigmas. The first step
/// taken has neither history nor correction, the last predicts at first order. Deterministic: no noise draws.
/// Reference: diffusers scheduling_unipc_multistep.py (multistep_uni_p_bh_update, multistep_uni_c_bh_update, step)
/// as of 0.28, whose final sigma is 0 (final_sigmas_type "zero"; 0.27 ended at sigma_min).
/// </summary>
public sealed class UniPcMultistepScheduler : MultistepSigmaScheduler
{
    /// <summary>The x0 predictions of the last two steps (the newest in _m0) and a buffer for this step's.</summary>
    private float[] _m0 = [], _m1 = [], _next = [];
    /// <summary>The sample the last step started from (after its correction): UniC's x.</summary>
    private float[] _lastSample = [];
    /// <summary>The model outputs held, up to 2 (diffusers' lower_order_nums); 0 before the first step taken.</summary>
    private int _held;
    /// <summary>The last step's predictor order, the order of this step's corrector.</summary>
    private int _lastOrder;

    public UniPcMultistepScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "UniPC")
    {
    }

    protected override void ResetHistory() => _held = 0;

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        int len = sample.Length;
        if (_m0.Length != len)
        {
            _m0 = new float[len];
            _m1 = new float[len];
            _next = new float[len];
            _lastSample = new float[len];
            _held = 0;
        }
        float[] model = _next;
        PredictX0(modelOutput, sample, stepIndex, model);
        if (_held > 0 && stepIndex > 0)
        {
            // UniC: the sample the last step predicted, corrected with the model output at it.
            Correct(sample, model, stepIndex);
        }
        (_next, _m1, _m0) = (_m1, _m0, model); // model_outputs shift: this step's x0 is now the newest
        int order = Math.Min(Math.Min(2, StepCount - stepIndex), _held + 1); // lower_order_final; warm-up
        sample.CopyTo(_lastSample);
        Predict(sample, stepIndex, order);
        _held = Math.Min(2, _held + 1);
        _lastOrder = order;
    }

    /// <summary>
    /// multistep_uni_c_bh_update at <paramref name="stepIndex"/>: x_t = s_t / s_s0 x - a_t h_phi_1 m0 - a_t B(h)
    /// (rho_1 D1 + rho_t (model - m0)), with x the last step's sample, m0 its x0 and D1 = (m1 - m0) / r1 from the step
    /// before it; rho solves R rho = b at the second order and is 0.5 at the first.
    /// </summary>
    private void Correct(Span<float> sample, float[] model, int stepIndex)
    {
        float[] m0 = _m0, m1 = _m1;
        (float alphaT, float sigmaT) = AlphaSigma(StepSigmas[stepIndex]);
        float sigmaS0 = AlphaSigma(StepSigmas[stepIndex - 1]).Sigma;
        float lambdaS0 = Lambda(stepIndex - 1);
        float h = Lambda(stepIndex) - lambdaS0;
        (float hh, float hPhi1) = Phi(h);
        bool second = _lastOrder == 2 && stepIndex > 1;
        float rk = second ? (Lambda(stepIndex - 2) - lambdaS0) / h : 1f;
        (float rhoD1, float rhoT) = second ? SolveRho(rk, hh, hPhi1) : (0f, 0.5f);
        float decay = sigmaT / sigmaS0, drift = alphaT * hPhi1, gain = alphaT * hPhi1; // bh2: B(h) = h_phi_1
        for (int i = 0; i < sample.Length; i++)
        {
            float xt = decay * _lastSample[i] - drift * m0[i];
            float correction = rhoT * (model[i] - m0[i]);
            if (second) correction = rhoD1 * ((m1[i] - m0[i]) / rk) + correction;
            sample[i] = xt - gain * correction;
        }
    }

    /// <summary>
    /// multistep_uni_p_bh_update at <paramref name="stepIndex"/>: x_t = s_t / s_s0 x - a_t h_phi_1 m0 - a_t B(h)
    /// 0.5 D1, D1 = (m1 - m0) / r1 (second order only).
    /// </summary>
    private void Predict(Span<float> sample, int stepIndex, int order)
    {
        float[] m0 = _m0, m1 = _m1;
        (float alphaT, float sigmaT) = AlphaSigma(StepSigmas[stepIndex + 1]);
        float sigmaS0 = AlphaSigma(StepSigmas[stepIndex]).Sigma;
        float lambdaS0 = Lambda(stepIndex);
        float h = Lambda(stepIndex + 1) - lambdaS0;
        float hPhi1 = Phi(h).HPhi1;
        float rk = order == 2 ? (Lambda(stepIndex - 1) - lambdaS0) / h : 1f;
        float decay = sigmaT / sigmaS0, drift = alphaT * hPhi1, gain = alphaT * hPhi1;
        for (int i = 0; i < sample.Length; i++)
        {
            float xt = decay * sample[i] - drift * m0[i];
            // At the first order pred_res is 0 and x_t - a_t B(h) 0 is x_t, at the final sigma too (B(h) = -1 there).
            sample[i] = order == 2 ? xt - gain * (0.5f * ((m1[i] - m0[i]) / rk)) : xt;
        }
    }

    /// <summary>hh = -h (predict_x0) and h_phi_1 = expm1(hh), which is also bh2's B(h).</summary>
    private static (float Hh, float HPhi1) Phi(float h) => (-h, ExpM1(-h));

    /// <summary>
    /// The second-order corrector's weights (<see cref="UniPcWeights"/>, bh2's B(h) = h_phi_1): R = [[1, 1], [r1, 1]]
    /// solved as torch does, whose pivot search keeps R's transpose as it is (its first column is [1, 1]).
    /// </summary>
    private static (float RhoD1, float RhoT) SolveRho(float rk, float hh, float hPhi1)
    {
        Span<float> rho = stackalloc float[2];
        UniPcWeights.RightHandSide(hh, hPhi1, hPhi1, rho);
        UniPcWeights.Solve([rk, 1f], rho, contiguous: true);
        return (rho[0], rho[1]);
    }
}
