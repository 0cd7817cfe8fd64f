using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// A discrete training schedule read in continuous time, as DPM-Solver's and UniPC's own code reads it: training step
/// n sits at t = (n + 1) / N (torch.linspace(0, 1, N + 1)[1:]), log alpha_t is 0.5 log(alphas_cumprod) interpolated
/// piecewise linearly between those points (the first and last segments extended beyond them), and sigma_t and
/// lambda_t follow from it. All float32, in torch's order of operations.
/// Reference: A1111's modules/models/diffusion/uni_pc/uni_pc.py NoiseScheduleVP('discrete') and interpolate_fn.
/// </summary>
internal sealed class DiscreteVpSchedule
{
    private readonly float[] _t, _logAlpha;

    public DiscreteVpSchedule(float[] alphasCumprod)
    {
        int n = alphasCumprod.Length;
        if (n < 2)
        {
            throw new ArgumentException($"a continuous-time schedule interpolates between training steps; the scheduler config has {n}", nameof(alphasCumprod));
        }
        _t = NoiseSchedule.TorchLinspace(0f, 1f, n + 1)[1..];
        _logAlpha = new float[n];
        for (int i = 0; i < n; i++)
        {
            _logAlpha[i] = 0.5f * MathF.Log(alphasCumprod[i]);
        }
    }

    /// <summary>
    /// log alpha_t: start_y + (t - start_x) (end_y - start_y) / (end_x - start_x) on the segment of the last point at
    /// or below t (torch's sort puts t after an equal point, so a point's own value comes back exactly; t = 1 takes the
    /// last segment).
    /// </summary>
    public float LogAlpha(float t)
    {
        int j = Array.BinarySearch(_t, t);
        j = j >= 0 ? j : ~j - 1; // the last point at or below t
        j = Math.Clamp(j, 0, _t.Length - 2);
        return _logAlpha[j] + (t - _t[j]) * (_logAlpha[j + 1] - _logAlpha[j]) / (_t[j + 1] - _t[j]);
    }

    /// <summary>alpha_t = exp(log alpha_t).</summary>
    public float Alpha(float t) => MathF.Exp(LogAlpha(t));

    /// <summary>sigma_t = sqrt(1 - exp(2 log alpha_t)).</summary>
    public float Sigma(float t) => MathF.Sqrt(1f - MathF.Exp(2f * LogAlpha(t)));

    /// <summary>lambda_t = log alpha_t - 0.5 log(1 - exp(2 log alpha_t)), the half log-SNR.</summary>
    public float Lambda(float t)
    {
        float logAlpha = LogAlpha(t);
        return logAlpha - 0.5f * MathF.Log(1f - MathF.Exp(2f * logAlpha));
    }
}
