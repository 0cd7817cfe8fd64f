using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>diffusers DDIMScheduler (eta 0, no thresholding), default spacing leading.</summary>
public sealed class DdimScheduler : Scheduler
{
    private int[] _timesteps = [];
    private readonly float _finalAlphaCumprod;

    /// <summary>clip_sample_range when clip_sample is on (diffusers' default for DDIM), else infinity.</summary>
    private readonly float _clip;

    public DdimScheduler(SchedulerConfig config, TimestepSpacing? spacing = null)
        : base(config, TimestepSpacing.Leading, spacing, ZeroTerminalSnr.EndsAtZero)
    {
        // set_alpha_to_one defaults to True in DDIMScheduler.__init__.
        _finalAlphaCumprod = (config.SetAlphaToOne ?? true) ? 1f : AlphasCumprod[0];
        _clip = ClipRange(config, clipByDefault: true);
        Refuse(config.Thresholding, "DDIM", "thresholding true");
    }

    /// <summary>
    /// The bound DDIM and LCM clamp x0 to: clip_sample_range when clip_sample is on (or absent and on by default),
    /// else infinity, which leaves every finite value as it is.
    /// </summary>
    internal static float ClipRange(SchedulerConfig config, bool clipByDefault)
    {
        if (!(config.ClipSample ?? clipByDefault))
        {
            return float.PositiveInfinity;
        }
        float range = (float)config.ClipSampleRange;
        return range > 0 ? range : throw new ArgumentException($"clip_sample_range must be above 0, got {config.ClipSampleRange}", nameof(config));
    }

    protected override void Schedule(int steps, int firstStep)
    {
        int[] timesteps = IndexedTimesteps(steps, steps);
        RequireSignalForEpsilon(timesteps, firstStep, _clip, "DDIM", "use a spacing that stops short of the last training step (leading)");
        InferenceSteps = steps;
        _timesteps = timesteps;
        TimestepValues = Array.ConvertAll(_timesteps, t => (float)t);
    }

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        int t = _timesteps[stepIndex];
        int prev = t - NumTrainTimesteps / InferenceSteps;
        float alphaProdT = AlphasCumprod[t];
        float alphaProdPrev = prev >= 0 ? AlphasCumprod[prev] : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT;
        float sqrtAlpha = MathF.Sqrt(alphaProdT);
        float sqrtBeta = MathF.Sqrt(betaProdT);
        float sqrtAlphaPrev = MathF.Sqrt(alphaProdPrev);
        float dirCoeff = MathF.Sqrt(1f - alphaProdPrev - 0f);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i], m = modelOutput[i];
            float x0, eps;
            switch (Prediction)
            {
                case PredictionType.VPrediction:
                    x0 = sqrtAlpha * x - sqrtBeta * m;
                    eps = sqrtAlpha * m + sqrtBeta * x;
                    break;
                case PredictionType.Sample:
                    x0 = m;
                    eps = (x - sqrtAlpha * x0) / sqrtBeta;
                    break;
                default:
                    x0 = (x - sqrtBeta * m) / sqrtAlpha;
                    eps = m;
                    break;
            }
            // diffusers clips x0 after forming the noise direction from the unclipped one.
            x0 = Math.Clamp(x0, -_clip, _clip);
            sample[i] = sqrtAlphaPrev * x0 + dirCoeff * eps;
        }
    }

    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        AddNoiseDiscrete(AlphasCumprod, _timesteps[stepIndex], original, noise, destination);
    }

    /// <summary>sqrt(a)*x0 + sqrt(1-a)*n at an integer timestep (DDIM/PNDM/LCM add_noise).</summary>
    internal static void AddNoiseDiscrete(float[] alphasCumprod, int t, ReadOnlySpan<float> original, ReadOnlySpan<float> noise, Span<float> destination)
    {
        float a = alphasCumprod[t];
        Blend(MathF.Sqrt(a), MathF.Sqrt(1f - a), original, noise, destination);
    }
}
