using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>diffusers LCMScheduler (original_inference_steps 50, timestep_scaling 10): one noise draw per step but
/// the last (draw index = step index). Like diffusers, it ignores timestep_spacing and steps_offset: its timesteps
/// are always picked from the 50-step distillation schedule.</summary>
public sealed class LcmScheduler : Scheduler
{
    private const int OriginalInferenceSteps = 50;
    private const float TimestepScaling = 10f;
    private const float SigmaData = 0.5f;
    private int[] _timesteps = [];
    private readonly float _finalAlphaCumprod;

    public LcmScheduler(SchedulerConfig config, TimestepSpacing? spacing = null)
        : base(config, TimestepSpacing.Leading, spacing)
    {
        if (NumTrainTimesteps < OriginalInferenceSteps)
        {
            throw new ArgumentException($"LCM picks its timesteps from a {OriginalInferenceSteps}-step schedule and needs num_train_timesteps >= {OriginalInferenceSteps}; the scheduler config has {NumTrainTimesteps}", nameof(config));
        }
        _finalAlphaCumprod = (config.SetAlphaToOne ?? true) ? 1f : AlphasCumprod[0];
    }

    protected override void Schedule(int steps, int firstStep)
    {
        int k = NumTrainTimesteps / OriginalInferenceSteps;
        int origin = OriginalInferenceSteps;
        if (origin / steps < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"LCM supports at most {origin} steps");
        }
        InferenceSteps = steps;
        double[] indices = NpLinspace(0, origin, steps, endpoint: false);
        _timesteps = new int[steps];
        for (int i = 0; i < steps; i++)
        {
            int idx = (int)Math.Floor(indices[i]);
            // lcm_origin_timesteps[::-1][idx], lcm_origin_timesteps[j] = (j+1)*k - 1
            _timesteps[i] = (origin - idx) * k - 1;
        }
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
        float scaled = t * TimestepScaling;
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
            float denoised = cOut * x0 + cSkip * x;
            sample[i] = n is null ? denoised : sqrtAlphaPrev * denoised + sqrtBetaPrev * n[i];
        }
    }

    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        DdimScheduler.AddNoiseDiscrete(AlphasCumprod, _timesteps[stepIndex], original, noise, destination);
    }
}
