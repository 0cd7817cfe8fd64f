namespace Sd.Kernels.Elementwise;

/// <summary>
/// PyTorch's bilinear resize to a given size (<c>F.interpolate(x, size, mode="bilinear", align_corners=False,
/// antialias=False)</c>), channels-last: A1111's "Latent" hires-fix upscaler. It runs once per image on latents (a few
/// hundred thousand values), so it is one plain loop with no vector variants.
/// </summary>
public static unsafe class BilinearResize
{
    /// <summary>
    /// [n, hIn, wIn, c] -> [n, hOut, wOut, c] (src and dst must not overlap), in float32 as aten's upsample_bilinear2d:
    /// each output row and column reads two source ones (<see cref="Source"/>), out = (x00 w0 + x01 w1) h0 + (x10 w0 +
    /// x11 w1) h1, the columns blended first.
    /// </summary>
    public static void Resize(float* src, float* dst, int n, int hIn, int wIn, int hOut, int wOut, int channels)
    {
        string? bad = n < 0 ? nameof(n) : channels < 0 ? nameof(channels) : hIn < 1 ? nameof(hIn) : wIn < 1 ? nameof(wIn)
            : hOut < 0 ? nameof(hOut) : wOut < 0 ? nameof(wOut) : null;
        if (bad is not null)
        {
            throw new ArgumentOutOfRangeException(bad, $"bilinear resize of [{n}, {hIn}, {wIn}, {channels}] to {hOut}x{wOut}: sizes must not be negative, the input's at least 1");
        }
        var columns = new (int I0, int I1, float W0, float W1)[wOut];
        for (int ox = 0; ox < wOut; ox++)
        {
            columns[ox] = Source(ox, wIn, wOut);
        }
        for (int b = 0; b < n; b++)
        {
            float* image = src + (long)b * hIn * wIn * channels;
            for (int oy = 0; oy < hOut; oy++)
            {
                (int y0, int y1, float h0, float h1) = Source(oy, hIn, hOut);
                float* top = image + (long)y0 * wIn * channels, bottom = image + (long)y1 * wIn * channels;
                float* row = dst + (((long)b * hOut + oy) * wOut) * channels;
                for (int ox = 0; ox < wOut; ox++)
                {
                    (int x0, int x1, float w0, float w1) = columns[ox];
                    for (int c = 0; c < channels; c++)
                    {
                        float t0 = top[x0 * channels + c] * w0 + top[x1 * channels + c] * w1;
                        float t1 = bottom[x0 * channels + c] * w0 + bottom[x1 * channels + c] * w1;
                        row[ox * channels + c] = t0 * h0 + t1 * h1;
                    }
                }
            }
        }
    }

    /// <summary>
    /// aten's compute_indices_weights_linear for align_corners=False: scale = (float)in / out, source = max(scale x
    /// (dst + 0.5) - 0.5, 0), i0 = (int)source, i1 = i0 + 1 unless i0 is the last, w1 = clamp(source - i0, 0, 1), w0 = 1 - w1.
    /// </summary>
    public static (int I0, int I1, float W0, float W1) Source(int dst, int inSize, int outSize)
    {
        float scale = (float)inSize / outSize;
        float source = scale * (dst + 0.5f) - 0.5f;
        if (source < 0f)
        {
            source = 0f;
        }
        int i0 = (int)source;
        float w1 = Math.Clamp(source - i0, 0f, 1f);
        return (i0, i0 + (i0 < inSize - 1 ? 1 : 0), 1f - w1, w1);
    }
}
