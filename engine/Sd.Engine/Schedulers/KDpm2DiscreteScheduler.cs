using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers KDPM2DiscreteScheduler (A1111's DPM2, Katherine Crowson's sample_dpm_2): a first call takes an Euler step
/// from level k to the log-space midpoint of levels k and k + 1 (their geometric mean), and the second call, made
/// there, redoes the step from level k to k + 1 with the midpoint's slope. The last step, ending at sigma 0, is Euler
/// only. Timesteps: [T0, I1, T1, ..., I(n-1), T(n-1)], I the training time of a midpoint level.
/// </summary>
public sealed class KDpm2DiscreteScheduler : TwoCallSigmaScheduler
{
    /// <summary>The midpoint levels, laid out as <see cref="SigmaScheduler.Sigmas"/> (entry 0, never read, is NaN).</summary>
    private float[] _interpolated = [];

    public KDpm2DiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, bool karras = false)
        : base(config, spacing, karras, "DPM2")
    {
        if (Prediction == PredictionType.Sample)
        {
            // diffusers raises NotImplementedError("prediction_type not implemented yet: sample") in step.
            throw new ArgumentException("DPM2 supports prediction_type epsilon and v_prediction, not sample", nameof(config));
        }
    }

    /// <summary>KDPM2 rounds the timesteps of its Karras sigmas (np.round, half to even).</summary>
    protected override double KarrasTimestep(double t) => NpRound(t);

    /// <summary>
    /// sigmas_interpol = sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp() in float32; sigmas and sigmas_interpol as
    /// torch.cat([s[:1], s[1:].repeat_interleave(2), s[-1:]]) (2n + 2 entries), and the timesteps interleaved with the
    /// midpoints' (_sigma_to_t over torch tensors, in float32).
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        int steps = timesteps.Length;
        var midpoints = new float[steps + 1];
        midpoints[0] = float.NaN; // log(sigma_0) lerped with the rolled-in final 0's log
        for (int k = 1; k <= steps; k++)
        {
            // torch.lerp(start, end, 0.5) = end - (end - start) * 0.5; -inf at the final 0, whose exp is 0.
            float start = MathF.Log(sigmas[k]), end = MathF.Log(sigmas[k - 1]);
            midpoints[k] = MathF.Exp(end - (end - start) * 0.5f);
        }
        float[] logSigmas = Array.ConvertAll(TrainSigmas, MathF.Log);
        var t = new float[2 * steps - 1];
        var s = new float[2 * steps + 2];
        var m = new float[2 * steps + 2];
        t[0] = timesteps[0];
        (s[0], m[0]) = (sigmas[0], midpoints[0]);
        for (int k = 1; k <= steps; k++)
        {
            s[2 * k - 1] = s[2 * k] = sigmas[k];
            m[2 * k - 1] = m[2 * k] = midpoints[k];
            if (k < steps)
            {
                t[2 * k - 1] = MidpointTimestep(midpoints[k], logSigmas);
                t[2 * k] = timesteps[k];
            }
        }
        (s[^1], m[^1]) = (sigmas[steps], midpoints[steps]);
        _interpolated = m;
        return (t, s);
    }

    /// <summary>
    /// diffusers _sigma_to_t given torch tensors: the log of the float32 level in float64, cast to float32 against the
    /// float32 log table, and the blend (1 - w) * low + w * high in float32 (not float64, as for numpy input).
    /// </summary>
    internal static float MidpointTimestep(float sigma, float[] logSigmas)
    {
        (int low, float w) = SigmaToTInterpolation(sigma, logSigmas);
        return (1f - w) * low + w * (low + 1);
    }

    /// <summary>Second calls scale the model input for the midpoint level they are made at.</summary>
    protected override float InputSigma(int stepIndex) => stepIndex % 2 == 1 ? _interpolated[stepIndex] : SigmaValues[stepIndex];

    /// <summary>From level k to the midpoint (sigma_hat = sigma, gamma 0).</summary>
    protected override void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float sigma = SigmaValues[stepIndex], dt = _interpolated[stepIndex + 1] - sigma;
        (float vScale, float vDenom) = VParameters(sigma);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], sigma, vScale, vDenom);
            sample[i] = x + (x - x0) / sigma * dt;
        }
    }

    /// <summary>From level k to k + 1 with the slope at the midpoint, where the model was called.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float midpoint = _interpolated[stepIndex], dt = SigmaValues[stepIndex] - SigmaValues[stepIndex - 1];
        (float vScale, float vDenom) = VParameters(midpoint);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], midpoint, vScale, vDenom);
            sample[i] = Start[i] + (x - x0) / midpoint * dt;
        }
    }
}
