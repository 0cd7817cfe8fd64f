namespace Sd.Kernels.Elementwise;

/// <summary>How <see cref="Interpolation.Resize"/> computes a value: PyTorch's F.interpolate modes A1111's latent upscalers use.</summary>
public enum InterpolationMode
{
    /// <summary>mode="bilinear": A1111's "Latent".</summary>
    Bilinear,

    /// <summary>mode="bilinear", antialias=True (PIL's triangle filter, widened when shrinking): "Latent (antialiased)".</summary>
    BilinearAntialiased,

    /// <summary>mode="bicubic" (Keys's cubic with a = -0.75, edges clamped): "Latent (bicubic)".</summary>
    Bicubic,

    /// <summary>mode="bicubic", antialias=True (PIL's cubic, a = -0.5, weights normalised): "Latent (bicubic antialiased)".</summary>
    BicubicAntialiased,

    /// <summary>mode="nearest": the source index floor(dst x in / out): "Latent (nearest)".</summary>
    Nearest,

    /// <summary>mode="nearest-exact": floor((dst + 0.5) x in / out): "Latent (nearest-exact)".</summary>
    NearestExact,
}

/// <summary>
/// PyTorch's resize to a given size (<c>F.interpolate(x, size, mode, antialias)</c>, align_corners unset), channels-last:
/// A1111's latent hires-fix upscalers. Every mode is separable: each output row and column reads a few source ones
/// with weights (<see cref="Taps"/>, computed as aten computes them), and out = sum over rows r of h_r x
/// (sum over columns c of w_c x in[r, c]), each sum in order, as aten's generic kernel and its antialiased two passes
/// add. It runs once per image on latents (a few hundred thousand values), so it is one plain loop.
/// </summary>
public static unsafe class Interpolation
{
    /// <summary>[n, hIn, wIn, c] -> [n, hOut, wOut, c] (src and dst must not overlap).</summary>
    public static void Resize(float* src, float* dst, int n, int hIn, int wIn, int hOut, int wOut, int channels, InterpolationMode mode)
    {
        string? bad = n < 0 ? nameof(n) : channels < 0 ? nameof(channels) : hIn < 1 ? nameof(hIn) : wIn < 1 ? nameof(wIn)
            : hOut < 0 ? nameof(hOut) : wOut < 0 ? nameof(wOut) : !Enum.IsDefined(mode) ? nameof(mode) : null;
        if (bad is not null)
        {
            throw new ArgumentOutOfRangeException(bad, $"{mode} resize of [{n}, {hIn}, {wIn}, {channels}] to {hOut}x{wOut}: sizes must not be negative, the input's at least 1");
        }
        Taps rows = Taps.Of(mode, hIn, hOut), columns = Taps.Of(mode, wIn, wOut);
        for (int b = 0; b < n; b++)
        {
            float* image = src + (long)b * hIn * wIn * channels;
            for (int oy = 0; oy < hOut; oy++)
            {
                float* row = dst + (((long)b * hOut + oy) * wOut) * channels;
                for (int ox = 0; ox < wOut; ox++)
                {
                    for (int c = 0; c < channels; c++)
                    {
                        float sum = 0;
                        for (int r = 0; r < rows.Used[oy]; r++)
                        {
                            float* source = image + (long)rows.Index[oy * rows.Count + r] * wIn * channels + c;
                            float blended = 0;
                            for (int k = 0; k < columns.Used[ox]; k++)
                            {
                                blended += source[columns.Index[ox * columns.Count + k] * channels] * columns.Weight[ox * columns.Count + k];
                            }
                            sum += blended * rows.Weight[oy * rows.Count + r];
                        }
                        row[ox * channels + c] = sum;
                    }
                }
            }
        }
    }

    /// <summary>
    /// The source indices and weights of each output index along one axis: <see cref="Used"/> of them, in slots of
    /// <see cref="Count"/> per output (only the antialiased filters use fewer than all). scale = (float)in / out
    /// throughout, as aten's area_pixel_compute_scale; where aten computes in double, so does this (to the bit: aten's
    /// portable CPU kernels give the same weights and sums).
    /// </summary>
    internal sealed class Taps
    {
        private Taps(int outSize, int count)
        {
            Count = count;
            Index = new int[outSize * count];
            Weight = new float[outSize * count];
            Used = new int[outSize];
            Array.Fill(Used, count);
        }

        public int Count { get; }

        /// <summary>How many of its slots each output sums (an antialiased filter's reach; else <see cref="Count"/>).</summary>
        public int[] Used { get; }

        public int[] Index { get; }

        public float[] Weight { get; }

        public static Taps Of(InterpolationMode mode, int inSize, int outSize)
        {
            float scale = (float)inSize / outSize;
            return mode switch
            {
                InterpolationMode.Bilinear => Linear(inSize, outSize, scale),
                InterpolationMode.Bicubic => Cubic(inSize, outSize, scale),
                InterpolationMode.Nearest or InterpolationMode.NearestExact => Nearest(inSize, outSize, scale, mode == InterpolationMode.NearestExact),
                _ => Antialiased(inSize, outSize, scale, cubic: mode == InterpolationMode.BicubicAntialiased),
            };
        }

        /// <summary>
        /// aten's compute_indices_weights_linear (align_corners=False): source = max(scale x (dst + 0.5) - 0.5, 0) in
        /// double, i0 = (int)source, i1 = i0 + 1 unless i0 is the last, w1 = clamp(source - i0, 0, 1) rounded to float,
        /// w0 = 1 - w1.
        /// </summary>
        private static Taps Linear(int inSize, int outSize, float scale)
        {
            var taps = new Taps(outSize, 2);
            for (int i = 0; i < outSize; i++)
            {
                double source = Math.Max(scale * (i + 0.5) - 0.5, 0);
                int i0 = (int)source;
                float w1 = (float)Math.Clamp(source - i0, 0, 1);
                taps.Set(i, 0, i0, 1f - w1);
                taps.Set(i, 1, i0 + (i0 < inSize - 1 ? 1 : 0), w1);
            }
            return taps;
        }

        /// <summary>
        /// aten's HelperInterpCubic.compute_indices_weights: source = scale x (dst + 0.5) - 0.5 in double (not clamped),
        /// the four rows from floorf(source as float) - 1 clamped to the edges, Keys's weights with A = -0.75 at
        /// t = source - that floor (which may be a hair below 0).
        /// </summary>
        private static Taps Cubic(int inSize, int outSize, float scale)
        {
            const float A = -0.75f;
            var taps = new Taps(outSize, 4);
            for (int i = 0; i < outSize; i++)
            {
                double source = scale * (i + 0.5) - 0.5;
                int floor = (int)MathF.Floor((float)source);
                float t = (float)(source - floor), u = 1f - t;
                ReadOnlySpan<float> weights = [Far(t + 1f, A), Near(t, A), Near(u, A), Far(u + 1f, A)];
                for (int j = 0; j < 4; j++)
                {
                    taps.Set(i, j, Math.Clamp(floor - 1 + j, 0, inSize - 1), weights[j]);
                }
            }
            return taps;
        }

        /// <summary>
        /// aten's nearest_idx / nearest_exact_idx: the same index when the sizes agree, dst / 2 when doubling, else
        /// min(floor(dst x scale), in - 1), or floor((dst + 0.5) x scale) for nearest-exact.
        /// </summary>
        private static Taps Nearest(int inSize, int outSize, float scale, bool exact)
        {
            var taps = new Taps(outSize, 1);
            for (int i = 0; i < outSize; i++)
            {
                int index = outSize == inSize ? i : outSize == 2 * inSize ? i >> 1
                    : Math.Min((int)MathF.Floor(exact ? (float)((i + 0.5) * scale) : i * scale), inSize - 1);
                taps.Set(i, 0, index, 1f);
            }
            return taps;
        }

        /// <summary>
        /// aten's _compute_indices_weights_aa (PIL's resampling): around center = scale x (dst + 0.5), the filter
        /// (triangle, or cubic with a = -0.5) stretched by the scale when shrinking, over the source indices it reaches,
        /// its weights divided by their sum.
        /// </summary>
        private static Taps Antialiased(int inSize, int outSize, float scale, bool cubic)
        {
            int size = cubic ? 4 : 2;
            float support = (float)(scale >= 1f ? size * 0.5 * scale : size * 0.5);
            float invScale = scale >= 1f ? (float)(1.0 / scale) : 1f;
            var taps = new Taps(outSize, (int)MathF.Ceiling(support) * 2 + 1);
            for (int i = 0; i < outSize; i++)
            {
                float center = (float)(scale * (i + 0.5));
                int min = Math.Max((int)(center - support + 0.5), 0);
                int count = Math.Min((int)(center + support + 0.5), inSize) - min;
                float total = 0;
                for (int j = 0; j < count; j++)
                {
                    float x = (float)((min + j - center + 0.5) * invScale);
                    float w = cubic ? PilCubic(x) : Math.Max(1f - Math.Abs(x), 0f);
                    taps.Set(i, j, min + j, w);
                    total += w;
                }
                for (int j = 0; j < count && total != 0; j++)
                {
                    taps.Weight[i * taps.Count + j] /= total;
                }
                taps.Used[i] = count;
            }
            return taps;
        }

        private void Set(int output, int tap, int index, float weight)
        {
            Index[output * Count + tap] = index;
            Weight[output * Count + tap] = weight;
        }

        /// <summary>Keys's cubic for |x| below 1 (aten's cubic_convolution1).</summary>
        private static float Near(float x, float a) => ((a + 2) * x - (a + 3)) * x * x + 1;

        /// <summary>Keys's cubic for |x| in [1, 2) (aten's cubic_convolution2).</summary>
        private static float Far(float x, float a) => ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;

        /// <summary>
        /// PIL's bicubic filter (a = -0.5) as aten copies it, a macro: below 1 in double, ((a + 2) x - (a + 3)) x x + 1;
        /// from 1 to 2 (((x - 5) x + 8) x - 4) in float, times a in double.
        /// </summary>
        private static float PilCubic(float x)
        {
            x = Math.Abs(x);
            return x < 1f ? (float)((1.5 * x - 2.5) * x * x + 1) : x < 2f ? (float)((((x - 5f) * x + 8f) * x - 4f) * -0.5) : 0f;
        }
    }
}
