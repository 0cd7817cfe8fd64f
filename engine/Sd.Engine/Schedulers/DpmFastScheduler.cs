using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// DPM fast (A1111's "DPM fast"; k-diffusion's sample_dpm_fast, DPM-Solver-Fast of Lu et al. 2022, with the eta of 1
/// A1111 gives it): n model calls spent on single-step DPM-Solver steps of orders 3, 3, ..., 3 and then n mod 3 (or 2,
/// 1 when 3 divides n), over spans of equal length in t = -log sigma. Each step runs from its level towards the next
/// but ends at the ancestral step's lower level (clamped to the run's last level) and adds noise up to the next level.
/// A step of order 3 calls the model at t, t + h/3 and t + 2h/3 of its span h, one of order 2 at t and t + h/2; the
/// first calls of a step move the sample to where the next is made, the last finishes the step from the sample the
/// step began with. n steps take n calls. One noise draw per step but the last (draw index = the step's last call),
/// whose noise k-diffusion scales by 0. The run ends at its last level, not at 0: k-diffusion returns the sample there.
/// The ends are A1111's: a run from the first step (txt2img) spans the training table's (the model's) levels whatever
/// the schedule, so its ramp and spacing do not matter; a part-way start (img2img) spans from the level it starts at,
/// where its picture is noised, to the schedule's last level above 0 (A1111's sample_img2img sigma_sched), so a one-call
/// run there has no span, which k-diffusion refuses. Every call's timestep is its level's training time, as A1111's
/// model wrapper takes it; model inputs are scaled and the data predicted as diffusers' Euler does.
/// Reference: k-diffusion's DPMSolver.dpm_solver_fast with dpm_solver_1_step, _2_step and _3_step (sampling.py).
/// </summary>
public sealed class DpmFastScheduler : SigmaScheduler
{
    /// <summary>The split points of an order-3 step (Python's 1 / 3 and 2 / 3, taken in float32 by torch).</summary>
    private const float Third = (float)(1.0 / 3), TwoThirds = (float)(2.0 / 3);

    /// <summary>Per call: its place in its step (0, 1, 2).</summary>
    private int[] _stage = [];

    /// <summary>
    /// Per call, the coefficients of the sample it leaves, from the step's starting sample x and the eps predictions:
    /// x - P eps_0 (a first call), x - P eps_0 - Q (eps_k - eps_0) (a later one); and for a step's last call the noise
    /// scale that follows (0 for the run's last step).
    /// </summary>
    private float[] _p = [], _q = [], _up = [];

    /// <summary>The sample the current step began with and its first call's eps prediction.</summary>
    private float[] _start = [], _eps0 = [];
    private int _lastCall = -1;

    public DpmFastScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "DPM fast", ZeroTerminalSnr.EndsAtFloor)
    {
    }

    /// <summary>
    /// The skipped steps keep their levels; the run's calls are planned over the levels between its ends, each call's
    /// timestep its level's training time; the last entry is the level the run ends at.
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        int steps = timesteps.Length, skipped = SkippedSteps, calls = steps - skipped;
        (float top, float bottom) = skipped == 0 ? (TrainSigmas[^1], TrainSigmas[0]) : (sigmas[skipped], sigmas[steps - 1]);
        var levels = new float[steps + 1];
        var stage = new int[steps];
        float[] p = new float[steps], q = new float[steps], up = new float[steps];
        sigmas.AsSpan(0, skipped).CopyTo(levels);
        levels[steps] = sigmas[steps];
        if (calls > 0)
        {
            levels[steps] = Plan(top, bottom, calls, levels.AsSpan(skipped, calls), stage.AsSpan(skipped),
                p.AsSpan(skipped), q.AsSpan(skipped), up.AsSpan(skipped));
        }
        float[] logSigmas = Array.ConvertAll(TrainSigmas, MathF.Log);
        var times = new float[steps];
        for (int i = 0; i < steps; i++)
        {
            times[i] = SigmaRamps.TrainingTime(levels[i], logSigmas);
        }
        (_stage, _p, _q, _up) = (stage, p, q, up);
        return (times, levels);
    }

    /// <summary>
    /// dpm_solver_fast's plan in k-diffusion's float32 tensor arithmetic: t from -log(top) to -log(bottom) in m + 1
    /// points (torch.linspace), m = n / 3 + 1; per step from t to t_next: sigma_down of the ancestral step, t_next' =
    /// min(t_end, -log sigma_down), h = t_next' - t, up = (sigma(t_next)^2 - sigma(t_next')^2) ** 0.5. The last call's
    /// coefficients are sigma(t_next') expm1(h) and, at order 2, sigma(t_next') / (2 r1) expm1(h), at order 3,
    /// sigma(t_next') / r2 (expm1(h) / h - 1); the earlier calls move to u1 = x - sigma(s1) expm1(r1 h) eps_0 and
    /// u2 = x - sigma(s2) expm1(r2 h) eps_0 - sigma(s2) (r2 / r1) (expm1(r2 h) / (r2 h) - 1) (eps_1 - eps_0). Writes
    /// each call's level and returns the level the run ends at.
    /// </summary>
    private float Plan(float top, float bottom, int calls, Span<float> levels, Span<int> stage, Span<float> p, Span<float> q, Span<float> up)
    {
        float tStart = -MathF.Log(top), tEnd = -MathF.Log(bottom);
        if (!(tEnd > tStart))
        {
            throw new ArgumentOutOfRangeException("steps", calls,
                $"{Name}: a run of {calls} call{(calls == 1 ? "" : "s")} from noise level {top} down to {bottom} has no span to cover, which k-diffusion's DPM fast refuses (as A1111 refuses a one-step img2img run with it); use more steps or a higher strength");
        }
        int m = calls / 3 + 1;
        float[] ts = NoiseSchedule.TorchLinspace(tStart, tEnd, m + 1);
        int call = 0;
        for (int i = 0; i < m; i++)
        {
            int order = calls % 3 == 0 ? (i < m - 2 ? 3 : m - i) : (i < m - 1 ? 3 : calls % 3);
            float t = ts[i], from = MathF.Exp(-t), to = MathF.Exp(-ts[i + 1]);
            float tNext = MathF.Min(tEnd, -MathF.Log(AncestralLevels(from, to).Down));
            float sigmaNext = MathF.Exp(-tNext);
            float h = tNext - t, expm1H = ExpM1(h);
            levels[call] = from;
            stage[call] = 0;
            if (order == 2)
            {
                float half = 0.5f * h;
                p[call] = MathF.Exp(-(t + half)) * ExpM1(half);
                levels[++call] = MathF.Exp(-(t + half));
                stage[call] = 1;
                q[call] = sigmaNext * expm1H; // sigma(t_next') / (2 r1) expm1(h), 2 r1 = 1
            }
            else if (order == 3)
            {
                float h1 = Third * h, h2 = TwoThirds * h;
                float sigma1 = MathF.Exp(-(t + h1)), sigma2 = MathF.Exp(-(t + h2));
                p[call] = sigma1 * ExpM1(h1);
                levels[++call] = sigma1;
                stage[call] = 1;
                p[call] = sigma2 * ExpM1(h2);
                q[call] = sigma2 * 2f * (ExpM1(h2) / h2 - 1f);
                levels[++call] = sigma2;
                stage[call] = 2;
                q[call] = sigmaNext / TwoThirds * (expm1H / h - 1f);
            }
            p[call] = sigmaNext * expm1H;
            up[call] = MathF.Sqrt(to * to - sigmaNext * sigmaNext);
            if (!float.IsFinite(p[call] + q[call] + up[call]))
            {
                throw new ArgumentOutOfRangeException("steps", calls, $"{Name}: step {i + 1} of the run's {m}, from noise level {from} to {to}, has no finite update in float32; use fewer steps");
            }
            call++;
        }
        return MathF.Exp(-tEnd);
    }

    /// <summary>A run from the first step starts at the model's top level, where A1111's txt2img scales its noise.</summary>
    protected override void OnSetTimesteps()
    {
        InitNoiseSigma = TrainSigmas[^1];
        _lastCall = -1;
    }

    /// <summary>
    /// One call: eps = (x - D) / sigma from the data D the model output predicts at the call's level; a step's first
    /// call keeps the sample it starts from, a later one continues it (the call before it must be the step's previous);
    /// the sample left is the next call's point or, after the step's last call, its result plus the noise.
    /// </summary>
    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        int stage = _stage[stepIndex], len = sample.Length;
        if (stage == 0)
        {
            if (_start.Length != len)
            {
                (_start, _eps0) = (new float[len], new float[len]);
            }
            sample.CopyTo(_start);
        }
        else if (_lastCall != stepIndex - 1 || _start.Length != len)
        {
            throw new InvalidOperationException($"{Name}: call {stepIndex} continues the step call {stepIndex - stage} began, so it must follow call {stepIndex - 1} on a sample of the same size");
        }
        float up = _up[stepIndex];
        float[]? n = up > 0f ? Draw(noise, stepIndex, len) : null;
        float sigma = SigmaValues[stepIndex], p = _p[stepIndex], q = _q[stepIndex];
        (float vScale, float vDenom) = VParameters(sigma);
        for (int i = 0; i < len; i++)
        {
            float x = sample[i];
            float eps = (x - PredictOriginal(x, modelOutput[i], sigma, vScale, vDenom)) / sigma;
            if (stage == 0)
            {
                _eps0[i] = eps;
            }
            float e0 = _eps0[i];
            float result = stage == 0 ? _start[i] - p * e0 : _start[i] - p * e0 - q * (eps - e0);
            sample[i] = n is null ? result : result + up * n[i];
        }
        _lastCall = stepIndex;
    }
}
