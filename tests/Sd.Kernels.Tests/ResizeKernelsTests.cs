using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// Nearest upsampling against PyTorch's index rule written out naively (float32 scale, floor, clamp; no 2x
/// shortcut), and channel concatenation; both are pure copies, so everything must match exactly.
/// </summary>
public unsafe class ResizeKernelsTests
{
    /// <summary>aten's nearest_idx without its shortcuts: min(floor(dst * (float)in / out), in - 1) in float32.</summary>
    private static int TorchNearest(int dst, int inSize, int outSize)
    {
        float scale = (float)inSize / outSize;
        return Math.Min((int)MathF.Floor((float)dst * scale), inSize - 1);
    }

    public static TheoryData<int, int, int, int> Sizes() => new()
    {
        { 7, 14, 5, 10 },
        { 14, 27, 10, 19 },
        { 3, 7, 1, 5 },
        { 1, 5, 3, 7 },
        { 10, 19, 14, 27 },
        { 8, 8, 4, 2 },
        { 10, 3, 7, 14 },
    };

    [Fact]
    public void Index_rule_matches_torch_including_the_2x_shortcut()
    {
        Assert.Equal(new[] { 0, 0, 0, 1, 1, 2, 2 }, Enumerable.Range(0, 7).Select(i => ResizeKernels.NearestIndex(i, 3, 7)));
        Assert.Equal(new[] { 0, 0, 0, 0, 0 }, Enumerable.Range(0, 5).Select(i => ResizeKernels.NearestIndex(i, 1, 5)));
        for (int inSize = 1; inSize <= 70; inSize++)
        {
            for (int outSize = 1; outSize <= 150; outSize++)
            {
                for (int i = 0; i < outSize; i++)
                {
                    Assert.Equal(TorchNearest(i, inSize, outSize), ResizeKernels.NearestIndex(i, inSize, outSize));
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Nearest_matches_the_naive_index_rule(int hIn, int hOut, int wIn, int wOut)
    {
        foreach (int channels in new[] { 1, 3, 16, 17, 320 })
        {
            foreach (int n in new[] { 1, 2 })
            {
                float[] src = NormTestData.Random(n * hIn * wIn * channels, channels + hIn, 10);
                var expected = new float[n * hOut * wOut * channels];
                for (int b = 0; b < n; b++)
                    for (int oy = 0; oy < hOut; oy++)
                        for (int ox = 0; ox < wOut; ox++)
                            for (int c = 0; c < channels; c++)
                            {
                                int sy = TorchNearest(oy, hIn, hOut), sx = TorchNearest(ox, wIn, wOut);
                                expected[((b * hOut + oy) * wOut + ox) * channels + c] =
                                    src[((b * hIn + sy) * wIn + sx) * channels + c];
                            }
                var scalar = new float[expected.Length];
                var fast = new float[expected.Length + 1];
                fast[^1] = 12345f;
                fixed (float* s = src)
                fixed (float* d1 = scalar)
                fixed (float* d2 = fast)
                {
                    ResizeKernels.Nearest_Scalar(s, d1, n, hIn, wIn, hOut, wOut, channels);
                    ResizeKernels.Nearest(s, d2, n, hIn, wIn, hOut, wOut, channels);
                }
                Assert.Equal(expected, scalar);
                Assert.Equal(expected, fast[..expected.Length]);
                Assert.Equal(12345f, fast[^1]);
            }
        }
    }

    [Fact]
    public void Large_2x_upsample_is_tiled_and_exact()
    {
        const int n = 2, h = 20, w = 18, channels = 96; // 138,240 output floats per image: tiled, ragged tiles
        float[] src = NormTestData.Random(n * h * w * channels, 5, 3);
        var expected = new float[n * 4 * h * w * channels];
        var actual = new float[expected.Length];
        fixed (float* s = src)
        fixed (float* e = expected)
        fixed (float* a = actual)
        {
            ResizeKernels.Nearest_Scalar(s, e, n, h, w, 2 * h, 2 * w, channels);
            ResizeKernels.Nearest(s, a, n, h, w, 2 * h, 2 * w, channels);
        }
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Concat_places_both_inputs_along_channels()
    {
        foreach (int rows in NormTestData.Rows.Append(200 * 3))
        {
            foreach ((int ca, int cb) in new[] { (1, 1), (3, 5), (16, 17), (320, 320), (640, 320), (1, 257) })
            {
                float[] a = NormTestData.Random(rows * ca, rows + ca, 5);
                float[] b = NormTestData.Random(rows * cb, rows + cb + 1, 5);
                var dst = new float[rows * (ca + cb) + 1];
                dst[^1] = 12345f;
                fixed (float* pa = a)
                fixed (float* pb = b)
                fixed (float* d = dst)
                {
                    ResizeKernels.ConcatChannels(pa, ca, pb, cb, d, rows);
                }
                for (int r = 0; r < rows; r++)
                {
                    for (int c = 0; c < ca; c++) Assert.Equal(a[r * ca + c], dst[r * (ca + cb) + c]);
                    for (int c = 0; c < cb; c++) Assert.Equal(b[r * cb + c], dst[r * (ca + cb) + ca + c]);
                }
                Assert.Equal(12345f, dst[^1]);
            }
        }
    }

    [Fact]
    public void CopyChannels_respects_both_strides_and_leaves_the_gaps()
    {
        var cases = new[] { (7, 5, 9, 11), (300, 250, 250, 250), (513, 130, 140, 260), (1, 3, 3, 3) };
        foreach ((int rows, int channels, int srcStride, int dstStride) in cases)
        {
            float[] src = NormTestData.Random(rows * srcStride, rows, 2);
            var expected = new float[rows * dstStride + 2];
            var actual = new float[expected.Length];
            Array.Fill(expected, -7f);
            Array.Fill(actual, -7f);
            fixed (float* s = src)
            fixed (float* e = expected)
            fixed (float* a = actual)
            {
                ResizeKernels.CopyChannels_Scalar(s, srcStride, e + 1, dstStride, rows, channels);
                ResizeKernels.CopyChannels(s, srcStride, a + 1, dstStride, rows, channels);
            }
            Assert.Equal(expected, actual);
        }
    }
}
