using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers EulerAncestralDiscreteScheduler: one noise draw per step (draw index = step index). diffusers 0.27 has no
/// use_karras_sigmas here (from_config ignores the key, and so does Sd), but A1111's Euler a (k-diffusion's
/// sample_euler_ancestral) runs on any schedule type, so a named ramp places the levels as Euler's.
/// </summary>
public sealed class EulerAncestralScheduler : SigmaScheduler
{
    public EulerAncestralScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "Euler ancestral", ZeroTerminalSnr.EndsAtFloor)
    {
        if (Prediction == PredictionType.Sample)
        {
            // diffusers raises NotImplementedError("prediction_type not implemented yet: sample") in step.
            throw new ArgumentException("Euler ancestral supports prediction_type epsilon and v_prediction, not sample", nameof(config));
        }
    }

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        float sigma = SigmaValues[stepIndex];
        float vDenom = sigma * sigma + 1f;
        float vScale = -sigma / MathF.Sqrt(vDenom);
        float sigmaFrom = sigma, sigmaTo = SigmaValues[stepIndex + 1];
        float from2 = sigmaFrom * sigmaFrom, to2 = sigmaTo * sigmaTo;
        float sigmaUp = MathF.Sqrt(to2 * (from2 - to2) / from2);
        // to2 - up^2 is to2^2 / from2 >= 0, but rounding the root and its square makes it a hair negative when the
        // level falls steeply (the cosine schedule's first step), where diffusers' float32 math gives NaN.
        float sigmaDown = MathF.Sqrt(MathF.Max(to2 - sigmaUp * sigmaUp, 0f));
        float dt = sigmaDown - sigma;
        float[] n = Draw(noise, stepIndex, sample.Length);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], sigma, vScale, vDenom);
            float derivative = (x - x0) / sigma;
            float prev = x + derivative * dt;
            sample[i] = prev + n[i] * sigmaUp;
        }
    }
}
