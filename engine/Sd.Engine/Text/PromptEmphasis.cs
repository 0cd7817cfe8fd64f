using Sd.Engine.Tensors;

namespace Sd.Engine.Text;

/// <summary>
/// A weighted chunk's emphasis on its hidden states [L, W]: each token's row times its weight, then the whole chunk
/// rescaled so its mean is what it was. Reference: stable-diffusion-webui sd_emphasis.EmphasisOriginal (the default
/// "Original" emphasis) in float32; the two means are summed in double, where torch sums float32 pairwise, so they
/// may differ from the reference's in the last bit. A1111 takes the means over the batch it encodes at once: for a
/// prompt that changes during the steps, the same chunk of each of its texts (<see cref="ApplyGroup"/>).
/// </summary>
internal static class PromptEmphasis
{
    /// <exception cref="ArgumentException">The weights bring the chunk's mean to zero (nothing can rescale it)
    /// or its states beyond float32.</exception>
    public static unsafe void Apply(Span<float> states, float[] weights, int width)
    {
        fixed (float* s = states)
        {
            ApplyGroup([(nint)s], [weights], [1], states.Length, width);
        }
    }

    /// <summary>
    /// Emphasis over a batch: <paramref name="states"/>[i] (L x W floats) weighted by <paramref name="weights"/>[i]
    /// (L floats), counted <paramref name="counts"/>[i] times in the means (a text a schedule repeats), then all
    /// rescaled by one ratio, the batch's mean before over its mean after.
    /// </summary>
    public static unsafe void ApplyGroup(ReadOnlySpan<nint> states, float[][] weights, ReadOnlySpan<int> counts, int length, int width)
    {
        float before = Mean(states, counts, length);
        for (int m = 0; m < states.Length; m++)
        {
            var member = new Span<float>((float*)states[m], length);
            ReadOnlySpan<float> memberWeights = weights[m];
            for (int t = 0; t < memberWeights.Length; t++)
            {
                Span<float> row = member.Slice(t * width, width);
                float weight = memberWeights[t];
                for (int c = 0; c < row.Length; c++)
                {
                    row[c] *= weight;
                }
            }
        }
        float after = Mean(states, counts, length);
        float ratio = before / after;
        for (int m = 0; m < states.Length; m++)
        {
            var member = new Span<float>((float*)states[m], length);
            for (int i = 0; i < member.Length; i++)
            {
                member[i] *= ratio;
            }
            if (!float.IsFinite(ratio) || !Tensor.AllFinite(member))
            {
                throw new ArgumentException($"the emphasis weights leave the hidden states unusable (their mean goes from {before} to {after}, which cannot be rescaled); use weights nearer 1");
            }
        }
    }

    private static unsafe float Mean(ReadOnlySpan<nint> states, ReadOnlySpan<int> counts, int length)
    {
        double sum = 0;
        long n = 0;
        for (int m = 0; m < states.Length; m++)
        {
            double memberSum = 0;
            foreach (float v in new ReadOnlySpan<float>((float*)states[m], length)) memberSum += v;
            sum += memberSum * counts[m];
            n += (long)counts[m] * length;
        }
        return (float)(sum / n);
    }
}
