using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// A1111's "UniPC" at its defaults (variant bh1, skip type time_uniform, order 3, lower order final): UniPC's
/// multistep predictor-corrector over continuous time, one model call a step. The run spans t from 1 to 1/N
/// (torch.linspace over calls + 1 points) on the training schedule read in continuous time
/// (<see cref="DiscreteVpSchedule"/>); each call runs the model at time (t - 1/N) 1000, fractional, and predicts x0
/// at t; each update first corrects the sample the last one predicted with this call's x0 (UniC), then predicts the
/// next (UniP) from up to three x0s, at orders 1, 2, 3, ..., 3, 2, 1 (the first update has no correction, the last no
/// call). The result stays at t = 1/N (no denoising to zero), as A1111 returns it. Deterministic: no noise draws.
/// A1111's timestep samplers count their steps as len(range(0, 1000, 1000 // steps)), so 30 steps run 31 calls and
/// 400 run 500; an img2img start of k = int(strength steps) calls runs from t = g_(k-1)/1000 + 1/1000 over k calls,
/// with the picture noised to the training step g_k (g_j = j (1000 // steps) + 1, clipped to 999: one grid step more
/// noise than the run starts at, as A1111 does). UniPC of order 3 needs at least 3 calls, as A1111 asserts.
/// v-prediction models' outputs become noise at the truncated model time (A1111's CompVisTimestepsVDenoiser), x0
/// ("sample") models' through uni_pc's model_wrapper. 1000 is N, the training steps, for other schedules.
/// Reference: A1111's modules/sd_samplers_timesteps_impl.py unipc, modules/sd_samplers_timesteps.py and
/// modules/models/diffusion/uni_pc/uni_pc.py (UniPC.sample multistep, multistep_uni_pc_bh_update).
/// </summary>
public sealed class A1111UniPcScheduler : Scheduler
{
    private const int SolverOrder = 3;
    private const string Name = "UniPC (A1111)";

    private readonly DiscreteVpSchedule _vp;

    /// <summary>Each call's continuous time, then the run's end, 1/N.</summary>
    private float[] _times = [];

    /// <summary>Per call, the update from its time to the next.</summary>
    private Update[] _updates = [];

    /// <summary>The training step a part-way start noises its picture to.</summary>
    private int _startTimestep;

    /// <summary>The x0 predictions of the last three calls (the newest in _m0) and a buffer for the next.</summary>
    private float[] _m0 = [], _m1 = [], _m2 = [], _spare = [];

    /// <summary>The sample the last update started from, which its correction starts from again.</summary>
    private float[] _lastSample = [];
    private int _lastCall = -1;

    public A1111UniPcScheduler(SchedulerConfig config, TimestepSpacing? spacing = null)
        : base(config, TimestepSpacing.Leading, spacing, ZeroTerminalSnr.EndsAtFloor)
    {
        _vp = new DiscreteVpSchedule(AlphasCumprod);
    }

    /// <summary>
    /// One update's coefficients: x' = Decay x - Drift m0 - Gain (sum_k Rho_k D_k), D_k = (m_k - m0) / R_k for the
    /// older x0s m1, m2, and for the correction D_t = m_t - m0 with the last rho.
    /// </summary>
    private readonly record struct Update(int Order, float Decay, float Drift, float Gain, float R1, float R2,
        float PredictRho1, float PredictRho2, float CorrectRho1, float CorrectRho2, float CorrectRhoT);

    protected override void Schedule(int steps, int firstStep)
    {
        int n = NumTrainTimesteps, stride = n / steps;
        int Grid(int j) => Math.Clamp(j * stride + 1, 0, n - 1); // get_timesteps: clip(range(0, n, n // steps) + 1)
        int calls = firstStep == 0 ? (n + stride - 1) / stride : steps - firstStep;
        if (calls is 1 or 2)
        {
            throw new ArgumentOutOfRangeException(nameof(steps), steps, firstStep == 0
                ? $"{Name}: {steps} steps run {calls} model call(s) (A1111's len(range(0, {n}, {n} // steps))); its updates of order {SolverOrder} need at least {SolverOrder}: use 3 steps or more"
                : $"{Name}: a start after step {firstStep} of {steps} runs {calls} model call(s); its updates of order {SolverOrder} need at least {SolverOrder}: use more steps or a higher strength");
        }
        float tEnd = (float)(1.0 / n);
        // txt2img runs from t = 1; img2img from A1111's t_start = g_(k-1) / N + 1 / N, each float32.
        float tStart = firstStep == 0 ? 1f : calls == 0 ? tEnd : (float)Grid(calls - 1) / n + tEnd;
        int count = firstStep + calls;
        var times = new float[count + 1];
        var timesteps = new float[count];
        for (int i = 0; i < firstStep; i++)
        {
            timesteps[i] = Grid(steps - 1 - i); // never run: the grid's model times from the top
        }
        if (calls > 0)
        {
            NoiseSchedule.TorchLinspace(tStart, tEnd, calls + 1).CopyTo(times, firstStep);
        }
        var updates = new Update[count];
        for (int c = firstStep; c < count; c++)
        {
            timesteps[c] = (times[c] - tEnd) * n; // A1111's (t - 1/N) * 1000
            int k = c - firstStep + 1; // the update's place in the run, 1..calls
            updates[c] = Plan(times, c, k < SolverOrder ? k : Math.Min(SolverOrder, calls + 1 - k));
        }
        (_times, _updates, _startTimestep) = (times, updates, Grid(calls));
        TimestepValues = timesteps;
        InferenceSteps = steps;
        _lastCall = -1;
    }

    /// <summary>
    /// multistep_uni_pc_bh_update's coefficients for the update from call <paramref name="c"/>'s time to the next, of
    /// order <paramref name="order"/> (bh1: B(h) = hh = -h): r_k = (lambda of call c - k - lambda_c) / h, the
    /// predictor's rhos 0.5 at order 2 and solved from R[:-1, :-1] at order 3, the corrector's 0.5 at order 1 and
    /// solved from R otherwise.
    /// </summary>
    private Update Plan(float[] times, int c, int order)
    {
        float t = times[c + 1], lambdaP0 = _vp.Lambda(times[c]);
        float h = _vp.Lambda(t) - lambdaP0;
        Span<float> rks = stackalloc float[SolverOrder];
        for (int k = 1; k < order; k++)
        {
            rks[k - 1] = (_vp.Lambda(times[c - k]) - lambdaP0) / h;
        }
        rks[order - 1] = 1f;
        float hh = -h, hPhi1 = ExpM1(hh);
        Span<float> b = stackalloc float[order];
        UniPcWeights.RightHandSide(hh, hPhi1, hh, b);
        Span<float> predict = stackalloc float[2], correct = stackalloc float[SolverOrder];
        if (order == 2)
        {
            predict[0] = 0.5f;
        }
        else if (order == 3)
        {
            b[..2].CopyTo(predict);
            UniPcWeights.Solve(rks, predict, contiguous: false);
        }
        if (order == 1)
        {
            correct[0] = 0.5f;
        }
        else
        {
            b.CopyTo(correct);
            UniPcWeights.Solve(rks, correct[..order], contiguous: true);
        }
        float alphaT = _vp.Alpha(t);
        return new Update(order, _vp.Sigma(t) / _vp.Sigma(times[c]), alphaT * hPhi1, alphaT * hh, rks[0], rks[1],
            predict[0], predict[1], correct[0], correct[1], correct[order - 1]);
    }

    /// <summary>
    /// One call: its x0 at the call's time, the last update corrected with it (every call but the run's first), then
    /// the next update predicted. A call must follow the one before it (the corrector takes that call's update).
    /// </summary>
    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        int len = sample.Length;
        if (stepIndex > FirstStep && (_lastCall != stepIndex - 1 || _m0.Length != len))
        {
            throw new InvalidOperationException($"{Name}: call {stepIndex} corrects the update call {stepIndex - 1} predicted, so it must follow that call on a sample of the same size");
        }
        if (_m0.Length != len)
        {
            (_m0, _m1, _m2, _spare, _lastSample) = (new float[len], new float[len], new float[len], new float[len], new float[len]);
        }
        float[] model = _spare;
        PredictX0(modelOutput, sample, stepIndex, model);
        if (stepIndex > FirstStep)
        {
            Apply(_updates[stepIndex - 1], _lastSample, sample, model);
        }
        (_spare, _m2, _m1, _m0) = (_m2, _m1, _m0, model);
        sample.CopyTo(_lastSample);
        Apply(_updates[stepIndex], _lastSample, sample, null);
        _lastCall = stepIndex;
    }

    /// <summary>
    /// x0 = (x - sigma_t eps) / alpha_t (data_prediction_fn), eps the output (epsilon), sqrt(a_k) v + sqrt(1 - a_k) x
    /// at the truncated model time k (v), or (x - alpha_t x0) / sigma_t (sample, model_wrapper's x_start).
    /// </summary>
    private void PredictX0(ReadOnlySpan<float> output, ReadOnlySpan<float> sample, int call, float[] x0)
    {
        float t = _times[call], alpha = _vp.Alpha(t), sigma = _vp.Sigma(t);
        float a = AlphasCumprod[(int)TimestepValues[call]];
        float sqrtA = MathF.Sqrt(a), sqrtB = MathF.Sqrt(1f - a);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i], m = output[i];
            float eps = Prediction switch
            {
                PredictionType.VPrediction => sqrtA * m + sqrtB * x,
                PredictionType.Sample => (x - alpha * m) / sigma,
                _ => m,
            };
            x0[i] = (x - sigma * eps) / alpha;
        }
    }

    /// <summary>
    /// An update from <paramref name="x"/> with the held x0s: the prediction (<paramref name="corrector"/> null) or
    /// the correction with the x0 the predicted sample gave, written to <paramref name="result"/>.
    /// </summary>
    private void Apply(Update u, float[] x, Span<float> result, float[]? corrector)
    {
        float[] m0 = _m0, m1 = _m1, m2 = _m2;
        int order = u.Order;
        for (int i = 0; i < result.Length; i++)
        {
            float xt = u.Decay * x[i] - u.Drift * m0[i];
            float d1 = order > 1 ? (m1[i] - m0[i]) / u.R1 : 0f, d2 = order > 2 ? (m2[i] - m0[i]) / u.R2 : 0f;
            if (corrector is null)
            {
                // At the first order pred_res is 0, and x_t - a_t B(h) 0 is x_t.
                float residual = order == 3 ? u.PredictRho1 * d1 + u.PredictRho2 * d2 : u.PredictRho1 * d1;
                result[i] = order == 1 ? xt : xt - u.Gain * residual;
            }
            else
            {
                float residual = order == 3 ? u.CorrectRho1 * d1 + u.CorrectRho2 * d2 : order == 2 ? u.CorrectRho1 * d1 : 0f;
                float dt = u.CorrectRhoT * (corrector[i] - m0[i]);
                result[i] = xt - u.Gain * (order == 1 ? dt : residual + dt);
            }
        }
    }

    /// <summary>
    /// A part-way start noises its picture to A1111's training step (<see cref="_startTimestep"/>), sqrt(a) x +
    /// sqrt(1 - a) n; any other call (inpainting's known region) to its own time, alpha_t x + sigma_t n.
    /// </summary>
    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        if (stepIndex == FirstStep && FirstStep > 0)
        {
            DdimScheduler.AddNoiseDiscrete(AlphasCumprod, _startTimestep, original, noise, destination);
            return;
        }
        float t = _times[stepIndex];
        Blend(_vp.Alpha(t), _vp.Sigma(t), original, noise, destination);
    }
}
