using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers KDPM2DiscreteScheduler (A1111's DPM2, Katherine Crowson's sample_dpm_2): a first call takes an Euler step
/// from level k to the log-space midpoint of levels k and k + 1 (their geometric mean), and the second call, made
/// there, redoes the step from level k to k + 1 with the midpoint's slope. The last step, ending at sigma 0, is Euler
/// only. Timesteps: [T0, I1, T1, ..., I(n-1), T(n-1)], I the training time of a midpoint level.
/// </summary>
public sealed class KDpm2DiscreteScheduler : MidpointSigmaScheduler
{
    /// <summary>The midpoint levels, laid out as <see cref="SigmaScheduler.Sigmas"/> (entry 0, never read, is NaN).</summary>
    private float[] _interpolated = [];

    public KDpm2DiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "DPM2")
    {
    }

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
            midpoints[k] = Midpoint(sigmas[k], sigmas[k - 1]); // the final 0's log is -inf: 0
        }
        _interpolated = Interleave(midpoints);
        // Step k's second call is made at midpoint k + 1 (between levels k and k + 1): the timesteps take midpoints[1..].
        return (InterleaveTimesteps(timesteps, midpoints.AsSpan(1)), Interleave(sigmas));
    }

    /// <summary>Second calls scale the model input for the midpoint level they are made at.</summary>
    protected override float InputSigma(int stepIndex) => stepIndex % 2 == 1 ? _interpolated[stepIndex] : SigmaValues[stepIndex];

    /// <summary>From level k to the midpoint (sigma_hat = sigma, gamma 0).</summary>
    protected override void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float sigma = SigmaValues[stepIndex];
        SlopeStep(modelOutput, sample, sigma, _interpolated[stepIndex + 1] - sigma, sample);
    }

    /// <summary>From level k to k + 1 with the slope at the midpoint, where the model was called.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise) =>
        SlopeStep(modelOutput, Start, _interpolated[stepIndex], SigmaValues[stepIndex] - SigmaValues[stepIndex - 1], sample);
}
