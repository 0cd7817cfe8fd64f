using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// What diffusers' KDPM2 and KDPM2 ancestral share: a second call made at a log-space midpoint level, whose training
/// time is interpolated in float32; Karras timesteps rounded; no sample prediction (their step raises
/// NotImplementedError for it).
/// </summary>
public abstract class MidpointSigmaScheduler : TwoCallSigmaScheduler
{
    protected MidpointSigmaScheduler(SchedulerConfig config, TimestepSpacing? spacing, bool karras, string name)
        : base(config, spacing, karras, name)
    {
        if (Prediction == PredictionType.Sample)
        {
            throw new ArgumentException($"{name} supports prediction_type epsilon and v_prediction, not sample", nameof(config));
        }
    }

    /// <summary>KDPM2 rounds the timesteps of its Karras sigmas (np.round, half to even).</summary>
    protected sealed override double KarrasTimestep(double t) => NpRound(t);

    /// <summary>
    /// a.log().lerp(b.log(), 0.5).exp() in float32 (torch.lerp(start, end, 0.5) = end - (end - start) * 0.5): 0 when
    /// a is 0 and b not, NaN when b is 0.
    /// </summary>
    protected static float Midpoint(float a, float b)
    {
        float start = MathF.Log(a), end = MathF.Log(b);
        return MathF.Exp(end - (end - start) * 0.5f);
    }

    /// <summary>
    /// [T0, I0, T1, I1, ..., I(n-2), T(n-1)] (diffusers' stack of timesteps_interpol and timesteps): step k's timestep
    /// after the training time of <paramref name="midpoints"/>[k - 1], the midpoint level the call before it is made at.
    /// </summary>
    protected float[] InterleaveTimesteps(float[] timesteps, ReadOnlySpan<float> midpoints)
    {
        float[] logSigmas = Array.ConvertAll(TrainSigmas, MathF.Log);
        var t = new float[2 * timesteps.Length - 1];
        t[0] = timesteps[0];
        for (int k = 1; k < timesteps.Length; k++)
        {
            t[2 * k - 1] = MidpointTimestep(midpoints[k - 1], logSigmas);
            t[2 * k] = timesteps[k];
        }
        return t;
    }

    /// <summary>torch.cat([x[:1], x[1:].repeat_interleave(2), x[-1:]]): how KDPM2 lays out each per-level table.</summary>
    protected static float[] Interleave(float[] x)
    {
        var result = new float[2 * x.Length];
        result[0] = x[0];
        for (int k = 1; k < x.Length; k++)
        {
            result[2 * k - 1] = result[2 * k] = x[k];
        }
        result[^1] = x[^1];
        return result;
    }

    /// <summary>
    /// diffusers _sigma_to_t given torch tensors: the log of the float32 level in float64, cast to float32 against the
    /// float32 log table, and the blend (1 - w) * low + w * high in float32 (not float64, as for numpy input).
    /// </summary>
    private static float MidpointTimestep(float sigma, float[] logSigmas)
    {
        (int low, float w) = SigmaToTInterpolation(sigma, logSigmas);
        return (1f - w) * low + w * (low + 1);
    }

    /// <summary>
    /// sample = from + (sample - x0) / sigma * dt, x0 the model output's prediction at <paramref name="sigma"/>: a first
    /// call's Euler step (from the sample itself) or a second call's (from <see cref="TwoCallSigmaScheduler.Start"/>).
    /// </summary>
    protected void SlopeStep(ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> from, float sigma, float dt, Span<float> sample)
    {
        (float vScale, float vDenom) = VParameters(sigma);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], sigma, vScale, vDenom);
            sample[i] = from[i] + (x - x0) / sigma * dt;
        }
    }
}
