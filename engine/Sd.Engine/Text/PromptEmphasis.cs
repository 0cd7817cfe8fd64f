using Sd.Engine.Tensors;

namespace Sd.Engine.Text;

/// <summary>
/// A weighted chunk's emphasis on its hidden states [L, W]: each token's row times its weight, then the whole chunk
/// rescaled so its mean is what it was. Reference: stable-diffusion-webui sd_emphasis.EmphasisOriginal (the default
/// "Original" emphasis) in float32; the two means are summed in double, where torch sums float32 pairwise, so they
/// may differ from the reference's in the last bit.
/// </summary>
internal static class PromptEmphasis
{
    /// <exception cref="ArgumentException">The weights bring the chunk's mean to zero (nothing can rescale it)
    /// or its states beyond float32.</exception>
    public static void Apply(Span<float> states, ReadOnlySpan<float> weights, int width)
    {
        float before = Mean(states);
        for (int t = 0; t < weights.Length; t++)
        {
            Span<float> row = states.Slice(t * width, width);
            float weight = weights[t];
            for (int c = 0; c < row.Length; c++)
            {
                row[c] *= weight;
            }
        }
        float after = Mean(states);
        float ratio = before / after;
        for (int i = 0; i < states.Length; i++)
        {
            states[i] *= ratio;
        }
        if (!float.IsFinite(ratio) || !Tensor.AllFinite(states))
        {
            throw new ArgumentException($"the emphasis weights leave the hidden states unusable (their mean goes from {before} to {after}, which cannot be rescaled); use weights nearer 1");
        }
    }

    private static float Mean(ReadOnlySpan<float> values)
    {
        double sum = 0;
        foreach (float v in values) sum += v;
        return (float)(sum / values.Length);
    }
}
