using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers HeunDiscreteScheduler (A1111's Heun): a first call takes an Euler step to the next noise level, and the
/// second call, made there, averages its slope with the first to redo the step (Heun's method, the trapezoid rule).
/// The last step, ending at sigma 0, is Euler only. Its timesteps and sigmas are Euler's with every level after the
/// first repeated: calls 2k - 1 and 2k both run at level k.
/// </summary>
public class HeunDiscreteScheduler : TwoCallSigmaScheduler
{
    /// <summary>clip_sample_range when clip_sample is on (off by default for Heun), else infinity.</summary>
    private readonly float _clip;

    /// <summary>The first call's slope, kept for the second call.</summary>
    private float[] _derivative = [];

    public HeunDiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : this(config, spacing, ramp, "Heun", ZeroTerminalSnr.NotASetting, DdimScheduler.ClipRange(config, clipByDefault: false))
    {
    }

    /// <summary>
    /// For a sampler made of Heun steps on levels of its own (<see cref="RestartScheduler"/>): each step's first call
    /// is made at its start level and its second at its end, and a step to 0 is one Euler call (<see cref="StepEnd"/>).
    /// <paramref name="clip"/> bounds x0 (infinity: unclipped).
    /// </summary>
    private protected HeunDiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing, SigmaRamp ramp, string name, ZeroTerminalSnr zeroSnr, float clip)
        : base(config, spacing, ramp, name, zeroSnr)
    {
        _clip = clip;
    }

    /// <summary>
    /// torch.cat([t[:1], t[1:].repeat_interleave(2)]) and torch.cat([s[:1], s[1:-1].repeat_interleave(2), s[-1:]]):
    /// 2n - 1 timesteps and 2n sigmas for n steps.
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        int steps = timesteps.Length;
        var t = new float[2 * steps - 1];
        var s = new float[2 * steps];
        t[0] = timesteps[0];
        s[0] = sigmas[0];
        for (int k = 1; k < steps; k++)
        {
            t[2 * k - 1] = t[2 * k] = timesteps[k];
            s[2 * k - 1] = s[2 * k] = sigmas[k];
        }
        s[^1] = sigmas[steps];
        return (t, s);
    }

    /// <summary>The level a first call's step ends at: the next call's (Heun's second call runs there, and the last step's end is 0).</summary>
    protected virtual float StepEnd(int stepIndex) => SigmaValues[stepIndex + 1];

    /// <summary>From level k to k + 1 (sigma_hat = sigma, gamma 0), keeping the slope.</summary>
    protected override void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float sigma = SigmaValues[stepIndex], dt = StepEnd(stepIndex) - sigma;
        (float vScale, float vDenom) = VParameters(sigma);
        if (_derivative.Length != sample.Length)
        {
            _derivative = new float[sample.Length];
        }
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = Math.Clamp(PredictOriginal(x, modelOutput[i], sigma, vScale, vDenom), -_clip, _clip);
            float derivative = (x - x0) / sigma;
            _derivative[i] = derivative;
            sample[i] = x + derivative * dt;
        }
    }

    /// <summary>The same step redone with the mean of both slopes; the model was called at level k + 1.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float sigmaNext = SigmaValues[stepIndex], dt = sigmaNext - SigmaValues[stepIndex - 1];
        (float vScale, float vDenom) = VParameters(sigmaNext);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = Math.Clamp(PredictOriginal(x, modelOutput[i], sigmaNext, vScale, vDenom), -_clip, _clip);
            float derivative = (_derivative[i] + (x - x0) / sigmaNext) / 2f;
            sample[i] = Start[i] + derivative * dt;
        }
    }
}
