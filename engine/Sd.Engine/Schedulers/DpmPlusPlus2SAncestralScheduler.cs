using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// DPM++ 2S a (A1111's "DPM++ 2S a"; k-diffusion's sample_dpmpp_2s_ancestral, eta 1, which diffusers has no class
/// for): each step is a DPM-Solver++(2S) step from level k down to the ancestral step's lower level sigma_down, then
/// noise of scale sigma_up. In log-sigma time (t = -log sigma) the first call, at level k, moves the sample to the
/// midpoint s = t + h / 2 of the step's span h; the second, made at sigma exp(-s), redoes the step from level k with
/// the data prediction made there and adds the noise. The last step, ending at sigma 0, is Euler. The levels and
/// timesteps are Euler's (the config's spacing, or Karras sigmas), the second calls' timesteps their levels' training
/// times; model inputs are scaled and the data predicted as diffusers' Euler does. One noise draw per step, at its
/// second call (draw index = that call's step index), as k-diffusion draws one per step after its second call.
/// </summary>
public sealed class DpmPlusPlus2SAncestralScheduler : TwoCallSigmaScheduler
{
    /// <summary>Per inference step k but the last: the two calls' coefficients and the noise scale.</summary>
    private float[] _toMidpoint = [], _toMidpointDenoised = [], _toDown = [], _toDownDenoised = [], _up = [];

    public DpmPlusPlus2SAncestralScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "DPM++ 2S ancestral", ZeroTerminalSnr.EndsAtFloor)
    {
    }

    /// <summary>
    /// k-diffusion's float32 tensor arithmetic per step k (sigmas[k] as from, sigmas[k + 1] as to): sigma_up =
    /// min(to, (to^2 (from^2 - to^2) / from^2) ** 0.5), sigma_down = (to^2 - up^2) ** 0.5; t = -log(from), t_next =
    /// -log(sigma_down), h = t_next - t, s = t + 0.5 h. The first call's sample is exp(-s) / exp(-t) x - expm1(-h 0.5)
    /// D1, the second's exp(-t_next) / exp(-t) x - expm1(-h) D2. Per call, the levels are [sigma_0, exp(-s_0),
    /// sigma_1, exp(-s_1), ..., sigma_(n-1), 0] and the timesteps [T0, I0, T1, ..., I(n-2), T(n-1)].
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        // Built aside and kept only when every step can run: a refused schedule leaves the scheduler as it was.
        int steps = timesteps.Length;
        var toMidpoint = new float[steps - 1];
        var toMidpointDenoised = new float[steps - 1];
        var toDown = new float[steps - 1];
        var toDownDenoised = new float[steps - 1];
        var up = new float[steps - 1];
        var midpoints = new float[steps - 1];
        var levels = new float[2 * steps];
        for (int k = 0; k < steps; k++)
        {
            levels[2 * k] = sigmas[k];
            if (k == steps - 1)
            {
                break; // the last step ends at sigma 0: Euler, no midpoint
            }
            float from = sigmas[k], to = sigmas[k + 1];
            (float down, up[k]) = AncestralLevels(from, to);
            if (down == 0f)
            {
                // to / from below about 2^-12: from^2 - to^2 rounds to from^2, so up = to. k-diffusion then takes this
                // step as one Euler call to 0 plus noise; the two-call layout has no such step.
                throw new ArgumentOutOfRangeException("steps", steps,
                    $"{Name}: step {k + 1} of {steps} falls from noise level {from} to {to}, so far that its ancestral step ends at 0 in float32, which k-diffusion runs as a one-call Euler step; use more steps or a larger sigma_min");
            }
            float t = -MathF.Log(from), tNext = -MathF.Log(down);
            float h = tNext - t;
            float s = t + 0.5f * h;
            float sigmaT = MathF.Exp(-t);
            midpoints[k] = levels[2 * k + 1] = MathF.Exp(-s);
            toMidpoint[k] = midpoints[k] / sigmaT;
            toMidpointDenoised[k] = ExpM1(-h * 0.5f);
            toDown[k] = MathF.Exp(-tNext) / sigmaT;
            toDownDenoised[k] = ExpM1(-h);
        }
        levels[^1] = sigmas[steps];
        (_toMidpoint, _toMidpointDenoised, _toDown, _toDownDenoised, _up) = (toMidpoint, toMidpointDenoised, toDown, toDownDenoised, up);
        return (InterleaveTimesteps(timesteps, midpoints), levels);
    }

    /// <summary>From level k to the step's midpoint; the last step's one call is an Euler step to sigma 0.</summary>
    protected override void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        if (FinalEulerStep(modelOutput, stepIndex, sample))
        {
            return;
        }
        int k = stepIndex / 2;
        DataStep(modelOutput, sample, SigmaValues[stepIndex], _toMidpoint[k], _toMidpointDenoised[k], sample);
    }

    /// <summary>From level k to its sigma_down with the midpoint's data prediction, then the noise times sigma_up.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float[] n = Draw(noise, stepIndex, sample.Length);
        int k = stepIndex / 2;
        DataStep(modelOutput, Start, SigmaValues[stepIndex], _toDown[k], _toDownDenoised[k], sample);
        AddScaledNoise(sample, n, _up[k]);
    }
}
