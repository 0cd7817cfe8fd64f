using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>ESRGAN's elementwise steps against their scalar references on strided rows of awkward widths.</summary>
public unsafe class FeatureMapKernelsTests
{
    [Theory]
    [InlineData(1, 3, 5)]
    [InlineData(7, 9, 40)]
    [InlineData(33, 17, 48)]
    [InlineData(4096, 32, 160)]
    public void Leaky_relu_and_scaled_add_equal_the_scalar_references(int rows, int columns, int stride)
    {
        var random = new Random(rows + columns);
        float[] x = GemmKernelsTests.RandomArray(random, rows * stride);
        float[] r = GemmKernelsTests.RandomArray(random, rows * stride);
        float[] vector = (float[])x.Clone(), scalar = (float[])x.Clone();
        fixed (float* pv = vector, ps = scalar, pr = r)
        {
            FeatureMapKernels.LeakyRelu(pv, rows, columns, stride, 0.2f);
            FeatureMapKernels.LeakyRelu_Scalar(ps, rows, columns, stride, 0.2f);
            Assert.Equal(scalar, vector);
            FeatureMapKernels.ScaledAdd(pv, stride, 0.2f, pr, stride, pv, stride, rows, columns);
            FeatureMapKernels.ScaledAdd_Scalar(ps, stride, 0.2f, pr, stride, ps, stride, rows, columns);
        }
        Assert.Equal(scalar, vector);
        for (int i = 0; i < rows * stride; i++)
        {
            if (i % stride >= columns) Assert.Equal(x[i], vector[i]); // past the columns: untouched
        }
        Assert.Contains(x, v => v < 0);
        Assert.NotEqual(x, vector);
    }

    [Theory]
    [InlineData(1, 3, 5)]
    [InlineData(33, 17, 48)]
    [InlineData(4096, 64, 64)]
    public void Prelu_equals_the_scalar_reference_with_a_slope_per_channel(int rows, int columns, int stride)
    {
        var random = new Random(rows * columns);
        float[] x = GemmKernelsTests.RandomArray(random, rows * stride);
        float[] slopes = GemmKernelsTests.RandomArray(random, columns);
        float[] vector = (float[])x.Clone(), scalar = (float[])x.Clone();
        fixed (float* pv = vector, ps = scalar, s = slopes)
        {
            FeatureMapKernels.Prelu(pv, rows, columns, stride, s);
            FeatureMapKernels.Prelu_Scalar(ps, rows, columns, stride, s);
        }
        Assert.Equal(scalar, vector);
        for (int i = 0; i < rows * stride; i++)
        {
            int c = i % stride;
            Assert.Equal(c >= columns ? x[i] : x[i] > 0 ? x[i] : x[i] * slopes[c], vector[i]);
        }
    }

    [Fact]
    public void Upsample_repeats_each_pixel_two_by_two()
    {
        float[] src = GemmKernelsTests.RandomArray(new Random(3), 2 * 3 * 5 * 7);
        var dst = new float[4 * src.Length];
        fixed (float* s = src, d = dst)
        {
            FeatureMapKernels.Upsample2xNearest(s, 2, 3, 5, 7, d);
        }
        for (int n = 0; n < 2; n++)
        for (int y = 0; y < 6; y++)
        for (int x = 0; x < 10; x++)
        for (int c = 0; c < 7; c++)
        {
            Assert.Equal(src[((n * 3 + y / 2) * 5 + x / 2) * 7 + c], dst[((n * 6 + y) * 10 + x) * 7 + c]);
        }
    }
}
