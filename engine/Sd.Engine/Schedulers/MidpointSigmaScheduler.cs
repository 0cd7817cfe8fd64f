using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// What diffusers' KDPM2 and KDPM2 ancestral share: a second call made at a log-space midpoint level, whose training
/// time is interpolated in float32; Karras timesteps rounded; no sample prediction (their step raises
/// NotImplementedError for it).
/// </summary>
public abstract class MidpointSigmaScheduler : TwoCallSigmaScheduler
{
    protected MidpointSigmaScheduler(SchedulerConfig config, TimestepSpacing? spacing, SigmaRamp ramp, string name)
        : base(config, spacing, ramp, name, ZeroTerminalSnr.NotASetting)
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
}
