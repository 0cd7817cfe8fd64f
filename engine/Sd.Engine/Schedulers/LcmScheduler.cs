using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>diffusers LCMScheduler (no thresholding): one noise draw per step but the last (draw index = step index).
/// Like diffusers, it ignores timestep_spacing and steps_offset: its timesteps are always picked from the
/// distillation schedule of original_inference_steps (50 by default).</summary>
public sealed class LcmScheduler : Scheduler
{
    private const float SigmaData = 0.5f;
    private int[] _timesteps = [];
    private readonly float _finalAlphaCumprod;
    private readonly int _originalSteps;
    private readonly float _timestepScaling;
    private readonly float _clip;

    public LcmScheduler(SchedulerConfig config, TimestepSpacing? spacing = null)
        : base(config, TimestepSpacing.Leading, spacing, ZeroTerminalSnr.EndsAtZero)
    {
        _originalSteps = config.OriginalInferenceSteps;
        if (_originalSteps < 1 || NumTrainTimesteps < _originalSteps)
        {
            throw new ArgumentException($"LCM picks its timesteps from a {_originalSteps}-step schedule (original_inference_steps) and needs num_train_timesteps >= {_originalSteps}; the scheduler config has {NumTrainTimesteps}", nameof(config));
        }
        _finalAlphaCumprod = (config.SetAlphaToOne ?? true) ? 1f : AlphasCumprod[0];
        _timestepScaling = (float)config.TimestepScaling;
        _clip = DdimScheduler.ClipRange(config, clipByDefault: false);
        Refuse(config.Thresholding, "LCM", "thresholding true");
    }

    protected override void Schedule(int steps, int firstStep)
    {
        int origin = _originalSteps;
        int k = NumTrainTimesteps / origin;
        if (origin / steps < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"LCM supports at most {origin} steps");
        }
        double[] indices = NpLinspace(0, origin, steps, endpoint: false);
        var timesteps = new int[steps];
        for (int i = 0; i < steps; i++)
        {
            int idx = (int)Math.Floor(indices[i]);
            // lcm_origin_timesteps[::-1][idx], lcm_origin_timesteps[j] = (j+1)*k - 1
            timesteps[i] = (origin - idx) * k - 1;
        }
        RequireSignalForEpsilon(timesteps, firstStep, _clip, "LCM", "start later (img2img below strength 1): LCM always starts at the last training step");
        InferenceSteps = steps;
        _timesteps = timesteps;
        TimestepValues = Array.ConvertAll(_timesteps, t => (float)t);
    }

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        int t = _timesteps[stepIndex];
        int prevT = stepIndex + 1 < _timesteps.Length ? _timesteps[stepIndex + 1] : t;
        float alphaProdT = AlphasCumprod[t];
        float alphaProdPrev = prevT >= 0 ? AlphasCumprod[prevT] : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT;
        float betaProdPrev = 1f - alphaProdPrev;
        float scaled = t * _timestepScaling;
        float cSkip = SigmaData * SigmaData / (scaled * scaled + SigmaData * SigmaData);
        float cOut = scaled / MathF.Sqrt(scaled * scaled + SigmaData * SigmaData);
        float sqrtAlpha = MathF.Sqrt(alphaProdT), sqrtBeta = MathF.Sqrt(betaProdT);
        bool last = stepIndex == InferenceSteps - 1;
        float[]? n = last ? null : Draw(noise, stepIndex, sample.Length);
        float sqrtAlphaPrev = MathF.Sqrt(alphaProdPrev), sqrtBetaPrev = MathF.Sqrt(betaProdPrev);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i], m = modelOutput[i];
            float x0 = Prediction switch
            {
                PredictionType.VPrediction => sqrtAlpha * x - sqrtBeta * m,
                PredictionType.Sample => m,
                _ => (x - sqrtBeta * m) / sqrtAlpha,
            };
            x0 = Math.Clamp(x0, -_clip, _clip);
            float denoised = cOut * x0 + cSkip * x;
            sample[i] = n is null ? denoised : sqrtAlphaPrev * denoised + sqrtBetaPrev * n[i];
        }
    }

    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        DdimScheduler.AddNoiseDiscrete(AlphasCumprod, _timesteps[stepIndex], original, noise, destination);
    }
}
