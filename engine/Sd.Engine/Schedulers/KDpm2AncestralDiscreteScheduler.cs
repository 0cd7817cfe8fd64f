using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers KDPM2AncestralDiscreteScheduler (A1111's DPM2 a, Katherine Crowson's sample_dpm_2_ancestral): DPM2 to
/// the ancestral step's lower level sigma_down, then noise of scale sigma_up added. A first call takes an Euler step
/// from level k to the log-space midpoint of k and its sigma_down; the second, made there, redoes the step from k to
/// sigma_down with the midpoint's slope and adds the noise. Every call draws noise (draw index = step index), as
/// diffusers' step does; only second calls add it. The last step, ending at sigma 0, is Euler only.
/// </summary>
public sealed class KDpm2AncestralDiscreteScheduler : MidpointSigmaScheduler
{
    /// <summary>The midpoint, up and down levels, laid out as <see cref="SigmaScheduler.Sigmas"/>.</summary>
    private float[] _interpolated = [], _up = [], _down = [];

    public KDpm2AncestralDiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "DPM2 ancestral")
    {
    }

    /// <summary>
    /// In float32 torch: next = sigmas.roll(-1) with a final 0; up = (next^2 (s^2 - next^2) / s^2) ** 0.5;
    /// down = (next^2 - up^2) ** 0.5, the last 0; interpol = s.log().lerp(down.log(), 0.5).exp(), the last two 0. Each
    /// interleaved as torch.cat([x[:1], x[1:].repeat_interleave(2), x[-1:]]); timesteps [T0, I0, T1, I1, ...,
    /// I(n-2), T(n-1)], I the midpoints' training times (_sigma_to_t over torch tensors).
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        int steps = timesteps.Length, levels = steps + 1;
        var up = new float[levels];
        var down = new float[levels];
        var interpolated = new float[levels];
        for (int k = 0; k < levels; k++)
        {
            float s = sigmas[k], next = k + 1 < levels ? sigmas[k + 1] : 0f;
            up[k] = MathF.Sqrt(next * next * (s * s - next * next) / (s * s)); // NaN at the final 0, never read
            down[k] = k + 1 < levels ? MathF.Sqrt(next * next - up[k] * up[k]) : 0f;
            interpolated[k] = k >= levels - 2 ? 0f : Midpoint(s, down[k]);
        }
        _interpolated = Interleave(interpolated);
        _up = Interleave(up);
        _down = Interleave(down);
        // Step k's second call is made at midpoint k (between level k and its sigma_down).
        return (InterleaveTimesteps(timesteps, interpolated), Interleave(sigmas));
    }

    /// <summary>Second calls scale the model input for the midpoint they are made at (its entry one index back).</summary>
    protected override float InputSigma(int stepIndex) => stepIndex % 2 == 1 ? _interpolated[stepIndex - 1] : SigmaValues[stepIndex];

    /// <summary>From level k to the midpoint; the call's noise is drawn and not used.</summary>
    protected override void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        Draw(noise, stepIndex, sample.Length);
        float sigma = SigmaValues[stepIndex];
        SlopeStep(modelOutput, sample, sigma, _interpolated[stepIndex] - sigma, sample);
    }

    /// <summary>From level k to its sigma_down with the midpoint's slope, then the noise times sigma_up.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float[] n = Draw(noise, stepIndex, sample.Length);
        int k = stepIndex - 1;
        SlopeStep(modelOutput, Start, _interpolated[k], _down[k] - SigmaValues[k], sample);
        AddScaledNoise(sample, n, _up[k]);
    }
}
