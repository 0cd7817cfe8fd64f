using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// Shared sigma machinery of diffusers' Euler/Euler-ancestral/LMS schedulers: float32 timesteps, sigmas interpolated
/// in float64 (np.interp) and stored as float32 with a trailing 0.
/// </summary>
public abstract class SigmaScheduler : Scheduler
{
    protected SigmaScheduler(SchedulerConfig config, TimestepSpacing? spacing)
        : base(config, TimestepSpacing.Linspace, spacing)
    {
        TrainSigmas = TrainingSigmas();
    }

    protected float[] TrainSigmas { get; }
    protected float[] SigmaValues { get; private set; } = [];
    public override IReadOnlyList<float>? Sigmas => SigmaValues;

    public override void SetTimesteps(int steps)
    {
        CheckSteps(steps);
        InferenceSteps = steps;
        int n = NumTrainTimesteps;
        var t = new float[steps];
        switch (Spacing)
        {
            case TimestepSpacing.Linspace:
                {
                    double[] lin = NpLinspace(0, n - 1, steps);
                    for (int i = 0; i < steps; i++)
                    {
                        t[i] = (float)lin[steps - 1 - i];
                    }
                    break;
                }
            case TimestepSpacing.Leading:
                {
                    int ratio = n / steps;
                    for (int i = 0; i < steps; i++)
                    {
                        t[i] = (float)((steps - 1 - i) * ratio) + Config.StepsOffset;
                    }
                    break;
                }
            default:
                {
                    double ratio = (double)n / steps;
                    for (int i = 0; i < steps; i++)
                    {
                        t[i] = (float)NpRound(n - i * ratio) - 1f;
                    }
                    break;
                }
        }
        var sigmas = new float[steps + 1];
        for (int i = 0; i < steps; i++)
        {
            sigmas[i] = (float)Interp(t[i], TrainSigmas);
        }
        sigmas[steps] = 0f;
        TimestepValues = t;
        SigmaValues = sigmas;
        float max = 0f;
        foreach (float s in sigmas)
        {
            max = Math.Max(max, s);
        }
        InitNoiseSigma = Spacing == TimestepSpacing.Leading ? MathF.Sqrt(max * max + 1f) : max;
        OnSetTimesteps();
    }

    protected virtual void OnSetTimesteps()
    {
    }

    public override float ScaleModelInput(int stepIndex)
    {
        float s = SigmaValues[stepIndex];
        return 1f / MathF.Sqrt(s * s + 1f);
    }

    public override void ScaleModelInput(int stepIndex, ReadOnlySpan<float> sample, Span<float> destination)
    {
        float s = SigmaValues[stepIndex];
        float d = MathF.Sqrt(s * s + 1f);
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = sample[i] / d;
        }
    }

    /// <summary>x0 prediction from the model output at sigma (epsilon or v).</summary>
    protected float PredictOriginal(float x, float m, float sigma, float vScale, float vDenom) =>
        Prediction == PredictionType.VPrediction ? m * vScale + x / vDenom : x - sigma * m;

    /// <summary>x0 + sigma*n (Euler-family add_noise).</summary>
    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        float sigma = SigmaValues[stepIndex];
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = original[i] + noise[i] * sigma;
        }
    }
}

/// <summary>diffusers EulerDiscreteScheduler (s_churn 0, linear interpolation, no Karras).</summary>
public sealed class EulerDiscreteScheduler : SigmaScheduler
{
    public EulerDiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null)
        : base(config, spacing)
    {
        if (config.UseKarrasSigmas == true)
        {
            throw new NotSupportedException("Euler with use_karras_sigmas is not supported");
        }
    }

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        float sigma = SigmaValues[stepIndex];
        float sigmaHat = sigma * (0f + 1f);
        float dt = SigmaValues[stepIndex + 1] - sigmaHat;
        // v_prediction: model_output * (-sigma / (sigma**2 + 1) ** 0.5) + (sample / (sigma**2 + 1))
        float vDenom = sigma * sigma + 1f;
        float vScale = -sigma / MathF.Sqrt(vDenom);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], sigmaHat, vScale, vDenom);
            float derivative = (x - x0) / sigmaHat;
            sample[i] = x + derivative * dt;
        }
    }
}
