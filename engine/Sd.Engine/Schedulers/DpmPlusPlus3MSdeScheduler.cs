using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// DPM++ 3M SDE (A1111's "DPM++ 3M SDE"; k-diffusion's sample_dpmpp_3m_sde, eta 1): a third-order multistep
/// stochastic DPM-Solver++, one model call per step. In log-sigma time a step of span h (doubled, h_eta = 2h, for the
/// SDE) decays the sample by exp(-h_eta) towards the data prediction D, corrects with the first (from the second step
/// of a run) and second (from the third) divided differences of the last predictions, then adds noise of scale
/// sigma_(k+1) sqrt(1 - exp(-2h)). The last step, ending at sigma 0, returns D. Levels and timesteps are Euler's, model
/// inputs scaled and the data predicted as diffusers' Euler does. One noise draw per step but the last (draw index =
/// step index): k-diffusion queries its Brownian noise over the steps' spans, which do not overlap, so a plain draw
/// per step has the same distribution (a seed gives other images than A1111's torchsde tree). A1111 also runs this
/// sampler on steps + 1 levels with the next-to-last dropped (discard_next_to_last_sigma); Sd runs the plain levels.
/// A run's history starts empty at its first step (img2img's too, as k-diffusion's sampler starts on the remaining
/// levels); steps must be visited in order.
/// </summary>
public sealed class DpmPlusPlus3MSdeScheduler : SigmaScheduler
{
    /// <summary>The last two data predictions (D1 the previous step's) and spans.</summary>
    private float[] _d1 = [], _d2 = [], _d = [];
    private float _h1, _h2;

    /// <summary>How many predictions the history holds (0-2), and the step that made the last.</summary>
    private int _held;
    private int _lastStep = -1;

    public DpmPlusPlus3MSdeScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "DPM++ 3M SDE", ZeroTerminalSnr.EndsAtFloor)
    {
    }

    /// <summary>It divides by the spans of the run's steps (its history starts at the run's first step).</summary>
    protected override int? GapLookback => 0;

    protected override void OnSetTimesteps()
    {
        _held = 0;
        _lastStep = -1;
    }

    /// <summary>
    /// k-diffusion's float32 arithmetic: t = -log(sigma_k), s = -log(sigma_(k+1)), h = s - t, h_eta = 2h; x =
    /// exp(-h_eta) x + -expm1(-h_eta) D; with two held: r0 = h1 / h, r1 = h2 / h, d1_0 = (D - D1) / r0, d1_1 = (D1 -
    /// D2) / r1, d1 = d1_0 + (d1_0 - d1_1) r0 / (r0 + r1), d2 = (d1_0 - d1_1) / (r0 + r1), phi_2 = expm1(-h_eta) /
    /// h_eta + 1, phi_3 = phi_2 / h_eta - 0.5, x += phi_2 d1 - phi_3 d2; with one: x += phi_2 (D - D1) / (h1 / h);
    /// then x += noise sigma_(k+1) sqrt(-expm1(-2h)).
    /// </summary>
    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        if (_held > 0 && stepIndex != _lastStep + 1)
        {
            throw new InvalidOperationException($"{Name}: step {stepIndex} after step {_lastStep}; a multistep run visits its steps in order");
        }
        float sigma = SigmaValues[stepIndex], next = SigmaValues[stepIndex + 1];
        int len = sample.Length;
        float[]? n = next == 0f ? null : Draw(noise, stepIndex, len);
        if (_d.Length != len)
        {
            (_d, _d1, _d2) = (new float[len], new float[len], new float[len]);
            _held = 0;
        }
        (float vScale, float vDenom) = VParameters(sigma);
        for (int i = 0; i < len; i++)
        {
            _d[i] = PredictOriginal(sample[i], modelOutput[i], sigma, vScale, vDenom);
        }
        float h = -MathF.Log(next) - -MathF.Log(sigma);
        if (n is null)
        {
            _d.AsSpan().CopyTo(sample); // the denoising step
        }
        else
        {
            Advance(sample, n, h, next);
        }
        (_d2, _d1, _d) = (_d1, _d, _d2);
        (_h2, _h1) = (_h1, h);
        _held = Math.Min(_held + 1, 2);
        _lastStep = stepIndex;
    }

    private void Advance(Span<float> sample, float[] n, float h, float next)
    {
        float hEta = h * 2f;
        float decay = MathF.Exp(-hEta), gain = -ExpM1(-hEta);
        float phi2 = ExpM1(-hEta) / hEta + 1f, phi3 = phi2 / hEta - 0.5f;
        float spread = MathF.Sqrt(-ExpM1(h * -2f));
        float r0 = _h1 / h, r1 = _h2 / h, rSum = r0 + r1;
        for (int i = 0; i < sample.Length; i++)
        {
            float x = decay * sample[i] + gain * _d[i];
            if (_held == 2)
            {
                float d10 = (_d[i] - _d1[i]) / r0, d11 = (_d1[i] - _d2[i]) / r1;
                float d1 = d10 + (d10 - d11) * r0 / rSum;
                float d2 = (d10 - d11) / rSum;
                x = x + phi2 * d1 - phi3 * d2;
            }
            else if (_held == 1)
            {
                x += phi2 * ((_d[i] - _d1[i]) / r0);
            }
            sample[i] = x + n[i] * next * spread;
        }
    }
}
