namespace Sd.Engine.Pipelines;

/// <summary>
/// AUTOMATIC1111's variation seed (its subseed): the draw that starts a run (txt2img's initial latents, the noise
/// img2img, inpainting and a hires fix add to a picture) is blended with the first draw of a generator of the
/// variation seed, the same size, by A1111's slerp at the variation strength (0: the seed's own draw, 1: the variation
/// seed's). Every other draw (a sampler's noise, a VAE posterior sample) is the seed's, as in A1111.
/// </summary>
/// Reference: A1111 modules/rng.py, ImageRNG.first (randn of the subseed, then slerp(subseed_strength, noise, subnoise)).
internal sealed class VariedNoise(INoiseSource seed, ulong variationSeed, float strength) : INoiseSource
{
    public void Next(Span<float> nchw) => seed.Next(nchw);

    /// <summary>The run's starting draw, <paramref name="nchw"/> [1, channels, height, width], varied.</summary>
    public void NextStart(Span<float> nchw, int channels, int height, int width)
    {
        seed.Next(nchw);
        var variation = new float[nchw.Length];
        new TorchNoise(variationSeed).Next(variation);
        Slerp(strength, nchw, variation, channels, height, width);
    }

    /// <summary>
    /// A1111's slerp(val, low, high) on a [C, H, W] draw, in place on <paramref name="low"/>. As A1111 writes it, the
    /// norms and the dot products run over dim 1, each column's H values, so there is an angle per channel and column;
    /// where the dots' mean is above 0.9995 (draws all but parallel) it is A1111's linear form, low x val + high x
    /// (1 - val), weights swapped as there. Float32 as torch's, with the columns' sums taken in double.
    /// </summary>
    internal static void Slerp(float val, Span<float> low, ReadOnlySpan<float> high, int channels, int height, int width)
    {
        if (low.Length != (long)channels * height * width || high.Length != low.Length)
        {
            throw new ArgumentException($"a variation blends two [{channels}, {height}, {width}] draws, got {low.Length} and {high.Length} values");
        }
        var dots = new float[channels * width];
        double mean = 0;
        for (int c = 0; c < channels; c++)
        {
            ReadOnlySpan<float> l = low.Slice(c * height * width, height * width), h = high.Slice(c * height * width, height * width);
            for (int x = 0; x < width; x++)
            {
                double lowSquares = 0, highSquares = 0;
                for (int y = 0; y < height; y++)
                {
                    lowSquares += (double)l[y * width + x] * l[y * width + x];
                    highSquares += (double)h[y * width + x] * h[y * width + x];
                }
                float lowNorm = (float)Math.Sqrt(lowSquares), highNorm = (float)Math.Sqrt(highSquares);
                double dot = 0;
                for (int y = 0; y < height; y++)
                {
                    dot += (double)(l[y * width + x] / lowNorm * (h[y * width + x] / highNorm));
                }
                dots[c * width + x] = (float)dot;
                mean += (float)dot;
            }
        }
        if (mean / dots.Length > 0.9995)
        {
            for (int i = 0; i < low.Length; i++) low[i] = low[i] * val + high[i] * (1 - val);
            return;
        }
        for (int c = 0; c < channels; c++)
        {
            for (int x = 0; x < width; x++)
            {
                float omega = MathF.Acos(dots[c * width + x]), so = MathF.Sin(omega);
                float a = MathF.Sin((1 - val) * omega) / so, b = MathF.Sin(val * omega) / so;
                for (int y = 0; y < height; y++)
                {
                    int i = (c * height + y) * width + x;
                    low[i] = a * low[i] + b * high[i];
                }
            }
        }
    }
}
