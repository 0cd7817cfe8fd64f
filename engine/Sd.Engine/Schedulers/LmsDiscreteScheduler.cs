using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>diffusers LMSDiscreteScheduler (order 4, optionally Karras sigmas). Derivative history buffers are allocated once per latent size.</summary>
public sealed class LmsDiscreteScheduler : SigmaScheduler
{
    private const int SolverOrder = 4; // step's order=4; the class attribute order (img2img's start) is 1
    private float[][] _derivatives = [];
    private int _count;
    private int _newest = -1;

    public LmsDiscreteScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "LMS", ZeroTerminalSnr.NotASetting)
    {
    }

    protected override bool KarrasEndsFromConfig => false;

    // A run started past index 0 still builds its first coefficients over the levels before it, dividing by their
    // gaps to the levels it runs on: with the levels non-increasing, only the level just before can equal one of them.
    protected override int? GapLookback => 1;

    protected override void OnSetTimesteps()
    {
        _count = 0;
        _newest = -1;
    }

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        if (_derivatives.Length != SolverOrder || _derivatives[0].Length != sample.Length)
        {
            _derivatives = new float[SolverOrder][];
            for (int k = 0; k < SolverOrder; k++)
            {
                _derivatives[k] = new float[sample.Length];
            }
        }
        float sigma = SigmaValues[stepIndex];
        float vDenom = sigma * sigma + 1f;
        float vScale = -sigma / MathF.Sqrt(vDenom);
        _newest = (_newest + 1) % SolverOrder;
        _count = Math.Min(_count + 1, SolverOrder);
        float[] d = _derivatives[_newest];
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float x0 = PredictOriginal(x, modelOutput[i], sigma, vScale, vDenom);
            d[i] = (x - x0) / sigma;
        }
        // diffusers takes the order from the step index and zips its coefficients with the derivatives it holds: where
        // img2img starts past index 0, the first steps use the leading coefficients of a higher-order formula.
        int order = Math.Min(stepIndex + 1, SolverOrder);
        int terms = Math.Min(order, _count);
        Span<float> coeffs = stackalloc float[SolverOrder];
        for (int k = 0; k < terms; k++)
        {
            coeffs[k] = (float)LmsCoefficient(order, stepIndex, k);
        }
        for (int i = 0; i < sample.Length; i++)
        {
            float sum = 0f;
            for (int k = 0; k < terms; k++)
            {
                sum += coeffs[k] * _derivatives[(_newest - k + SolverOrder) % SolverOrder][i];
            }
            sample[i] = sample[i] + sum;
        }
    }

    /// <summary>Integral over [sigma_t, sigma_t+1] of the Lagrange basis polynomial (exact; scipy quad is exact here).</summary>
    internal double LmsCoefficient(int order, int t, int current)
    {
        // Build the polynomial prod_{k != current} (tau - s_k) / (s_current - s_k) in coefficients, then integrate.
        Span<double> poly = stackalloc double[SolverOrder + 1];
        poly.Clear();
        poly[0] = 1.0;
        int degree = 0;
        double sc = SigmaValues[t - current];
        for (int k = 0; k < order; k++)
        {
            if (k == current)
            {
                continue;
            }
            double sk = SigmaValues[t - k];
            double denom = sc - sk;
            // multiply by (tau - sk) / denom
            for (int p = degree + 1; p >= 0; p--)
            {
                double shifted = p > 0 ? poly[p - 1] : 0.0;
                double same = p <= degree ? poly[p] : 0.0;
                poly[p] = (shifted - sk * same) / denom;
            }
            degree++;
        }
        double a = SigmaValues[t], b = SigmaValues[t + 1];
        double integral = 0;
        for (int p = 0; p <= degree; p++)
        {
            integral += poly[p] * (Math.Pow(b, p + 1) - Math.Pow(a, p + 1)) / (p + 1);
        }
        return integral;
    }
}
