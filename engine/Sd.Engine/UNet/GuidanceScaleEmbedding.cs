namespace Sd.Engine.UNet;

/// <summary>
/// The condition an LCM-distilled UNet takes in place of classifier-free guidance: the guidance scale w, as
/// sin/cos features of 1000 (w - 1) at the sinusoidal frequencies 10000^(-i / (half - 1)), in float32 step by step
/// as PyTorch computes them.
/// Reference: diffusers LatentConsistencyModelPipeline.get_guidance_scale_embedding (StableDiffusionPipeline's copy).
/// </summary>
public static class GuidanceScaleEmbedding
{
    /// <summary>
    /// The <paramref name="dim"/>-wide row for <paramref name="guidanceScale"/> (the pipeline's scale; the model is
    /// conditioned on scale - 1): [sin(1000 (w - 1) f_i) for i below half, cos(...) likewise, a 0 when dim is odd].
    /// </summary>
    public static float[] Compute(float guidanceScale, int dim)
    {
        if (!float.IsFinite(guidanceScale))
        {
            throw new ArgumentException($"the guidance scale must be finite, got {guidanceScale}", nameof(guidanceScale));
        }
        if (dim < 4)
        {
            // half - 1 divides the frequency exponent: diffusers' smallest working width is 4.
            throw new ArgumentOutOfRangeException(nameof(dim), dim, "the embedding needs at least 4 features");
        }
        // torch.tensor(guidance_scale - 1) rounds the Python double's difference to float32 (the scale given here is
        // already a float32, so scales that are not binary fractions may differ from diffusers' in the last bit);
        // * 1000.0 stays float32.
        float w = (float)((double)guidanceScale - 1) * 1000f;
        if (!float.IsFinite(w))
        {
            throw new ArgumentOutOfRangeException(nameof(guidanceScale), guidanceScale, "the guidance scale is too large to embed: 1000 (scale - 1) overflows float32");
        }
        int half = dim / 2;
        float step = MathF.Log(10000f) / (half - 1);
        var row = new float[dim];
        for (int i = 0; i < half; i++)
        {
            float angle = w * MathF.Exp(i * -step);
            row[i] = MathF.Sin(angle);
            row[half + i] = MathF.Cos(angle);
        }
        return row;
    }
}
