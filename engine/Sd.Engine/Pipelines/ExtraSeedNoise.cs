namespace Sd.Engine.Pipelines;

/// <summary>
/// AUTOMATIC1111's extra seed options, which change only the draw that starts a run (txt2img's initial latents, the
/// noise img2img, inpainting and a hires fix add to a picture); every other draw (a sampler's noise, a VAE posterior
/// sample) is the source's, as in A1111:
/// <list type="bullet">
/// <item>its variation seed (the subseed): the seed's draw is blended with the first draw of a generator of the
/// variation seed, the same size, by A1111's slerp at the variation strength (0: the seed's own, 1: the variation
/// seed's);</item>
/// <item>its seed resize ("Resize seed from width/height"): the seed's draw is made at another latent size, from a
/// fresh generator of the seed (varied there, at that size), and pasted centred into the run's own draw, which keeps
/// the rest; a picture's composition then carries over to a nearby size. At the run's own size it changes nothing.</item>
/// </list>
/// </summary>
/// Reference: A1111 modules/rng.py, ImageRNG.first (randn of the seed at the resize shape, randn of the subseed,
/// slerp(subseed_strength, noise, subnoise), then the paste into randn of the image's generator at the full shape).
/// <param name="source">The image's draws: a generator of <paramref name="seed"/>, or a caller's source.</param>
/// <param name="variationSeed">The variation seed; null: no variation.</param>
/// <param name="fromHeight">Latent height the seed's draw is made at; 0 with <paramref name="fromWidth"/>: no resize.</param>
internal sealed class ExtraSeedNoise(INoiseSource source, ulong seed, ulong? variationSeed, float strength, int fromHeight, int fromWidth)
    : INoiseSource
{
    public void Next(Span<float> nchw) => source.Next(nchw);

    /// <summary>The run's starting draw, <paramref name="nchw"/> [1, channels, height, width], with the extra seed options.</summary>
    public void NextStart(Span<float> nchw, int channels, int height, int width)
    {
        source.Next(nchw);
        if (fromHeight <= 0 || (fromHeight == height && fromWidth == width))
        {
            Vary(nchw, channels, height, width);
            return;
        }
        var resized = new float[channels * fromHeight * fromWidth]; // [1, channels, fromHeight, fromWidth]
        new TorchNoise(seed).Next(resized);
        Vary(resized, channels, fromHeight, fromWidth);
        (int toY, int fromY, int rows) = Centred(height, fromHeight);
        (int toX, int fromX, int columns) = Centred(width, fromWidth);
        for (int c = 0; c < channels; c++)
        {
            for (int y = 0; y < rows; y++)
            {
                resized.AsSpan(((c * fromHeight) + fromY + y) * fromWidth + fromX, columns)
                    .CopyTo(nchw.Slice(((c * height) + toY + y) * width + toX, columns));
            }
        }
    }

    /// <summary>
    /// Where a side of <paramref name="from"/> values goes in one of <paramref name="size"/>, as A1111 places it: offset
    /// by d = floor((size - from) / 2); a shorter side whole at d, a longer one from -d on, d x 2 shorter (so an odd
    /// excess leaves the last value of the run's draw in place).
    /// </summary>
    private static (int Target, int Source, int Length) Centred(int size, int from)
    {
        int d = (int)Math.Floor((size - from) / 2.0);
        return d >= 0 ? (d, 0, from) : (0, -d, from + 2 * d);
    }

    /// <summary>A draw [1, channels, height, width] blended with the variation seed's of its size; unchanged without one.</summary>
    private void Vary(Span<float> draw, int channels, int height, int width)
    {
        if (variationSeed is not { } varied || !(strength > 0))
        {
            return;
        }
        var variation = new float[draw.Length];
        new TorchNoise(varied).Next(variation);
        Slerp(strength, draw, variation, channels, height, width);
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
