using Sd.Kernels.Layout;

namespace Sd.Kernels.Tests;

public unsafe class TransposeKernelsTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 257)]
    [InlineData(257, 1)]
    [InlineData(31, 33)]
    [InlineData(64, 64)]
    [InlineData(4, 27 * 19)]
    [InlineData(100, 65)]
    public void Tiled_transpose_equals_the_scalar_reference(int rows, int cols)
    {
        var src = new float[rows * cols];
        for (int i = 0; i < src.Length; i++) src[i] = i * 0.5f - 7;
        var expected = new float[src.Length];
        var actual = new float[src.Length];
        fixed (float* s = src)
        fixed (float* e = expected)
        fixed (float* a = actual)
        {
            TransposeKernels.Transpose_Scalar(s, e, rows, cols);
            TransposeKernels.Transpose_Tiled(s, a, rows, cols);
        }
        Assert.Equal(expected, actual);
        int r = rows / 2, k = cols - 1;
        Assert.Equal(src[r * cols + k], expected[k * rows + r]); // src[r, k] lands at dst[k, r]
    }

    [Fact]
    public void Nchw_to_nhwc_and_back_round_trips_and_places_channels_last()
    {
        const int n = 2, c = 3, h = 5, w = 7;
        var nchw = new float[n * c * h * w];
        for (int i = 0; i < nchw.Length; i++) nchw[i] = i;
        var nhwc = new float[nchw.Length];
        var back = new float[nchw.Length];
        fixed (float* a = nchw)
        fixed (float* b = nhwc)
        fixed (float* r = back)
        {
            TransposeKernels.NchwToNhwc(a, b, n, c, h * w);
            TransposeKernels.NhwcToNchw(b, r, n, c, h * w);
        }
        // element (n=1, c=2, y=3, x=4)
        int nchwIndex = ((1 * c + 2) * h + 3) * w + 4;
        int nhwcIndex = ((1 * h + 3) * w + 4) * c + 2;
        Assert.Equal(nchw[nchwIndex], nhwc[nhwcIndex]);
        Assert.Equal(nchw, back);
    }
}
