using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// DPM++ SDE (A1111's "DPM++ SDE"; k-diffusion's sample_dpmpp_sde, eta 1, r 1/2): each step is a stochastic
/// DPM-Solver++ step in two calls. In log-sigma time (t = -log sigma)
/// the first call, at level k, takes an ancestral step towards the midpoint s = t + h / 2 of the step's span h (to the
/// ancestral lower level of sigma exp(-s), plus noise); the second, made at sigma exp(-s), redoes the step from level
/// k with the data predicted there, towards level k + 1, plus noise. The last step, ending at sigma 0, is Euler.
/// Levels and timesteps are Euler's, model inputs scaled and the data predicted as diffusers' Euler does.
/// <para>
/// The noise is Brownian in sigma, as k-diffusion's Brownian-tree sampler gives it: a step's two draws (draw index =
/// call index) are increments of one Brownian path, the second call's over the whole span [sigma_(k+1), sigma_k], of
/// which the first call's, [exp(-s), sigma_k], is a part: first z1, then (z1 sqrt(a) + z2 sqrt(b)) / sqrt(a + b) for
/// the two parts' lengths a and b. Steps' spans do not overlap, so their draws are independent. A torchsde tree is
/// not reproduced: the same seed gives other images than diffusers' or A1111's, of the same distribution.
/// </para>
/// </summary>
public sealed class DpmPlusPlusSdeScheduler : TwoCallSigmaScheduler
{
    /// <summary>Per inference step k but the last: the two calls' coefficients, noise scales and Brownian weights.</summary>
    private float[] _toMidpoint = [], _toMidpointDenoised = [], _midpointUp = [];
    private float[] _toNext = [], _toNextDenoised = [], _nextUp = [];
    private float[] _firstPart = [], _secondPart = [], _span = [];

    /// <summary>The first call's standard-normal draw, kept for the second call's increment.</summary>
    private float[] _firstDraw = [];

    public DpmPlusPlusSdeScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "DPM++ SDE", ZeroTerminalSnr.EndsAtFloor)
    {
    }

    /// <summary>The noise divides by the square roots of the steps' spans: the levels must fall from the run's first step.</summary>
    protected override int? GapLookback => 0;

    /// <summary>
    /// k-diffusion's float32 tensor arithmetic per step k: t = -log(sigma_k), t_next = -log(sigma_(k+1)), h = t_next -
    /// t, s = t + h 0.5. Towards a level L from exp(-t): (down, up) = the ancestral step (up = min(L, (L^2 (F^2 - L^2) /
    /// F^2) ** 0.5), F = exp(-t); down = (L^2 - up^2) ** 0.5), t' = -log(down), sample = exp(-t') / exp(-t) x - expm1(t -
    /// t') D + noise up; L = exp(-s) for the first call, exp(-t_next) for the second. Per call, the levels are
    /// [sigma_0, exp(-s_0), sigma_1, ..., sigma_(n-1), 0] and the timesteps [T0, I0, T1, ..., I(n-2), T(n-1)].
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        int steps = timesteps.Length, n = steps - 1;
        (_toMidpoint, _toMidpointDenoised, _midpointUp) = (new float[n], new float[n], new float[n]);
        (_toNext, _toNextDenoised, _nextUp) = (new float[n], new float[n], new float[n]);
        (_firstPart, _secondPart, _span) = (new float[n], new float[n], new float[n]);
        var midpoints = new float[n];
        var levels = new float[2 * steps];
        for (int k = 0; k < steps; k++)
        {
            levels[2 * k] = sigmas[k];
            if (k == n)
            {
                break; // the last step ends at sigma 0: Euler, no midpoint
            }
            float t = -MathF.Log(sigmas[k]), tNext = -MathF.Log(sigmas[k + 1]);
            float h = tNext - t;
            float s = t + h * 0.5f;
            float from = MathF.Exp(-t), midpoint = MathF.Exp(-s), next = MathF.Exp(-tNext);
            midpoints[k] = levels[2 * k + 1] = midpoint;
            (_toMidpoint[k], _toMidpointDenoised[k], _midpointUp[k]) = AncestralStep(t, from, midpoint);
            (_toNext[k], _toNextDenoised[k], _nextUp[k]) = AncestralStep(t, from, next);
            _firstPart[k] = MathF.Sqrt(from - midpoint);
            _secondPart[k] = MathF.Sqrt(midpoint - next);
            _span[k] = MathF.Sqrt(from - next);
        }
        levels[^1] = sigmas[steps];
        return (InterleaveTimesteps(timesteps, midpoints), levels);
    }

    /// <summary>(exp(-t') / exp(-t), expm1(t - t'), up) of an ancestral step from exp(-t) = <paramref name="from"/> towards <paramref name="to"/>.</summary>
    private static (float Ratio, float ExpM1, float Up) AncestralStep(float t, float from, float to)
    {
        (float down, float up) = AncestralLevels(from, to);
        float tDown = -MathF.Log(down);
        return (MathF.Exp(-tDown) / from, ExpM1(t - tDown), up);
    }

    /// <summary>Level k towards the midpoint, plus the span's first noise; the last step's one call is an Euler step to sigma 0.</summary>
    protected override void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        if (FinalEulerStep(modelOutput, stepIndex, sample))
        {
            return;
        }
        int k = stepIndex / 2;
        float sigma = SigmaValues[stepIndex];
        float[] z = Draw(noise, stepIndex, sample.Length);
        if (_firstDraw.Length != z.Length)
        {
            _firstDraw = new float[z.Length];
        }
        z.CopyTo(_firstDraw, 0);
        DataStep(modelOutput, sample, sigma, _toMidpoint[k], _toMidpointDenoised[k], sample);
        AddScaledNoise(sample, z, _midpointUp[k]);
    }

    /// <summary>Level k towards level k + 1 with the midpoint's data prediction, plus the whole span's noise.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        float[] z = Draw(noise, stepIndex, sample.Length);
        int k = stepIndex / 2;
        DataStep(modelOutput, Start, SigmaValues[stepIndex], _toNext[k], _toNextDenoised[k], sample);
        float a = _firstPart[k], b = _secondPart[k], span = _span[k], up = _nextUp[k];
        for (int i = 0; i < sample.Length; i++)
        {
            float increment = (_firstDraw[i] * a + z[i] * b) / span;
            sample[i] += increment * up;
        }
    }
}
