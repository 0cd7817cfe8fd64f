using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers HeunDiscreteScheduler (A1111's Heun): each inference step takes two model calls, an Euler step to the
/// next noise level, then a second call there whose slope is averaged with the first to redo the step from where it
/// began (Heun's method, the trapezoid rule). The last step, ending at sigma 0, is Euler only, so n steps take
/// 2n - 1 calls. Its timesteps and sigmas are Euler's with every level after the first repeated: calls 2k - 1 and 2k
/// both run at level k. Even step indices are first calls, odd ones second; the sample after a first call is the
/// Euler prediction the second call is made at.
/// </summary>
public sealed class HeunDiscreteScheduler : SigmaScheduler
{
    /// <summary>clip_sample_range when clip_sample is on (off by default for Heun), else infinity.</summary>
    private readonly float _clip;

    /// <summary>The first call's slope and the sample its step started from, kept for the second call.</summary>
    private float[] _derivative = [], _start = [];

    /// <summary>The step index of the first call whose second call is due; -1 when none is.</summary>
    private int _pendingFirst = -1;

    public HeunDiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, bool karras = false)
        : base(config, spacing, karras, "Heun", ZeroTerminalSnr.NotASetting)
    {
        _clip = DdimScheduler.ClipRange(config, clipByDefault: false);
    }

    public override int Order => 2;

    protected override void OnSetTimesteps()
    {
        _pendingFirst = -1;
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

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        bool second = stepIndex % 2 == 1;
        if (second && (_pendingFirst != stepIndex - 1 || _derivative.Length != sample.Length))
        {
            // Runs start at a first call (SetTimesteps refuses odd first steps), so this is a call out of order.
            throw new InvalidOperationException($"Heun: step {stepIndex} is a second call, which must follow the first call, step {stepIndex - 1}, on a sample of the same size");
        }
        _pendingFirst = second ? -1 : stepIndex;
        // First call: from level k to k + 1 (sigma_hat = sigma, gamma 0). Second: the same step, the model having
        // been called at level k + 1, which converts its output to x0.
        float sigma = SigmaValues[second ? stepIndex - 1 : stepIndex];
        float sigmaNext = SigmaValues[second ? stepIndex : stepIndex + 1];
        float sigmaInput = second ? sigmaNext : sigma;
        float dt = sigmaNext - sigma;
        // v_prediction: model_output * (-sigma_input / (sigma_input**2 + 1) ** 0.5) + (sample / (sigma_input**2 + 1))
        float vDenom = sigmaInput * sigmaInput + 1f;
        float vScale = -sigmaInput / MathF.Sqrt(vDenom);
        if (!second)
        {
            if (_derivative.Length != sample.Length)
            {
                _derivative = new float[sample.Length];
                _start = new float[sample.Length];
            }
            for (int i = 0; i < sample.Length; i++)
            {
                float x = sample[i];
                float x0 = Math.Clamp(PredictOriginal(x, modelOutput[i], sigmaInput, vScale, vDenom), -_clip, _clip);
                float derivative = (x - x0) / sigma;
                _derivative[i] = derivative;
                _start[i] = x;
                sample[i] = x + derivative * dt;
            }
            return;
        }
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = Math.Clamp(PredictOriginal(x, modelOutput[i], sigmaInput, vScale, vDenom), -_clip, _clip);
            float derivative = (_derivative[i] + (x - x0) / sigmaNext) / 2f;
            sample[i] = _start[i] + derivative * dt;
        }
    }
}
