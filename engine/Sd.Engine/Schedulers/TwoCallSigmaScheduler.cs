using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// The two-call samplers on noise levels (diffusers' Heun, KDPM2, KDPM2 ancestral; k-diffusion's DPM++ 2S a and SDE):
/// each inference step but the last takes two model calls, so n steps take 2n - 1 (Restart's plan may end a step at 0
/// before its last, in one call: <see cref="IsSecondCall"/>). Even step indices are first calls,
/// which move the sample to where the second call is made and keep the sample they started from; odd ones are second
/// calls, which redo the step from that sample.
/// diffusers' scheduler order is 2: a run may start only at a first call.
/// </summary>
public abstract class TwoCallSigmaScheduler : SigmaScheduler
{
    /// <summary>The step index of the first call whose second call is due; -1 when none is.</summary>
    private int _pendingFirst = -1;

    /// <param name="zeroSnr">What the config's rescale_betas_zero_snr does: nothing for diffusers' classes, which have no
    /// such setting; k-diffusion's samplers run on Euler's levels, which it raises to a floor.</param>
    protected TwoCallSigmaScheduler(SchedulerConfig config, TimestepSpacing? spacing, SigmaRamp ramp, string name, ZeroTerminalSnr zeroSnr)
        : base(config, spacing, ramp, name, zeroSnr)
    {
    }

    public sealed override int Order => 2;

    /// <summary>The sample the pending first call started from.</summary>
    protected float[] Start { get; private set; } = [];

    protected sealed override void OnSetTimesteps()
    {
        _pendingFirst = -1;
    }

    public sealed override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        if (IsSecondCall(stepIndex))
        {
            if (_pendingFirst != stepIndex - 1 || Start.Length != sample.Length)
            {
                // Runs start at a first call (SetTimesteps refuses odd first steps), so this is a call out of order.
                throw new InvalidOperationException($"{Name}: step {stepIndex} is a second call, which must follow the first call, step {stepIndex - 1}, on a sample of the same size");
            }
            _pendingFirst = -1;
            SecondCall(modelOutput, stepIndex, sample, noise);
            return;
        }
        if (Start.Length != sample.Length)
        {
            Start = new float[sample.Length];
        }
        sample.CopyTo(Start);
        _pendingFirst = stepIndex;
        FirstCall(modelOutput, stepIndex, sample, noise);
    }

    /// <summary>
    /// Whether a call is a second one: the odd ones, as every step but the last takes two calls (Restart's plan may
    /// also have a one-call step to 0 before its last).
    /// </summary>
    protected virtual bool IsSecondCall(int stepIndex) => stepIndex % 2 == 1;

    /// <summary>A first call's step, in place; <see cref="Start"/> holds the sample it began from.</summary>
    protected abstract void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise);

    /// <summary>A second call's step, in place, redone from <see cref="Start"/>.</summary>
    protected abstract void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise);

    /// <summary>
    /// [T0, I0, T1, I1, ..., I(n-2), T(n-1)] (KDPM2's stack of timesteps_interpol and timesteps): step k's timestep
    /// after the training time of <paramref name="midpoints"/>[k - 1], the level between steps k - 1 and k that the
    /// call before it is made at.
    /// </summary>
    protected float[] InterleaveTimesteps(float[] timesteps, ReadOnlySpan<float> midpoints)
    {
        float[] logSigmas = Array.ConvertAll(TrainSigmas, MathF.Log);
        var t = new float[2 * timesteps.Length - 1];
        t[0] = timesteps[0];
        for (int k = 1; k < timesteps.Length; k++)
        {
            t[2 * k - 1] = MidpointTimestep(midpoints[k - 1], logSigmas);
            t[2 * k] = timesteps[k];
        }
        return t;
    }

    /// <summary>
    /// diffusers _sigma_to_t given torch tensors: the log of the float32 level in float64, cast to float32 against the
    /// float32 log table, and the blend (1 - w) * low + w * high in float32 (not float64, as for numpy input).
    /// </summary>
    private static float MidpointTimestep(float sigma, float[] logSigmas) => BlendedTime(SigmaToTInterpolation(sigma, logSigmas));

    /// <summary>
    /// sample = from + (sample - x0) / sigma * dt, x0 the model output's prediction at <paramref name="sigma"/>: a first
    /// call's Euler step (from the sample itself) or a second call's (from <see cref="TwoCallSigmaScheduler.Start"/>).
    /// </summary>
    protected void SlopeStep(ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> from, float sigma, float dt, Span<float> sample)
    {
        (float vScale, float vDenom) = VParameters(sigma);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], sigma, vScale, vDenom);
            sample[i] = from[i] + (x - x0) / sigma * dt;
        }
    }

    /// <summary>
    /// The last step's one call, which ends at sigma 0, as k-diffusion's DPM++ samplers take it: an Euler step, x + (x -
    /// D) / sigma x (0 - sigma). Returns whether <paramref name="stepIndex"/> was that call.
    /// </summary>
    protected bool FinalEulerStep(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample)
    {
        if (stepIndex != StepCount - 1)
        {
            return false;
        }
        float sigma = SigmaValues[stepIndex];
        SlopeStep(modelOutput, sample, sigma, 0f - sigma, sample);
        return true;
    }

    /// <summary>sample += noise x scale: an ancestral step's added noise, sigma_up x a standard-normal draw.</summary>
    protected static void AddScaledNoise(Span<float> sample, float[] noise, float scale)
    {
        for (int i = 0; i < sample.Length; i++)
        {
            sample[i] += noise[i] * scale;
        }
    }

    /// <summary>
    /// sample = ratio * from - expm1 * D, D the data predicted from the sample at <paramref name="sigma"/>: a DPM-Solver++
    /// step (k-diffusion's DPM++ 2S a and SDE), from the sample itself or from <see cref="Start"/>.
    /// </summary>
    protected void DataStep(ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> from, float sigma, float ratio, float expm1, Span<float> sample)
    {
        (float vScale, float vDenom) = VParameters(sigma);
        for (int i = 0; i < sample.Length; i++)
        {
            float x0 = PredictOriginal(sample[i], modelOutput[i], sigma, vScale, vDenom);
            sample[i] = ratio * from[i] - expm1 * x0;
        }
    }
}
