using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Tests;

/// <summary>
/// Activations against their double-precision definitions (abs error &lt;= 1e-6 max(1, |x|)), then every variant of
/// every pointwise kernel against the scalar reference over lengths and channel counts that exercise the unrolled
/// body, the masked remainder and the short path, in place and out of place, with sentinels after the output.
/// </summary>
public unsafe class ActivationKernelsTests
{
    private const float Sentinel = 12345f;

    public static TheoryData<string> Variants() => NormTestData.Variants();

    private static delegate*<Activation, float*, float*, nint, void> ApplyKernel(string variant) => variant switch
    {
        "v512" => &ActivationKernels.Apply_Vector512,
        "v256" => &ActivationKernels.Apply_Vector256,
        _ => &ActivationKernels.Apply_Scalar,
    };

    private static delegate*<float*, float*, nint, nint, nint, void> GegluKernel(string variant) => variant switch
    {
        "v512" => &ActivationKernels.Geglu_Vector512,
        "v256" => &ActivationKernels.Geglu_Vector256,
        _ => &ActivationKernels.Geglu_Scalar,
    };

    private static delegate*<float*, float*, float*, nint, nint, Activation, void> BiasAddKernel(string variant) => variant switch
    {
        "v512" => &ActivationKernels.BiasAdd_Vector512,
        "v256" => &ActivationKernels.BiasAdd_Vector256,
        _ => &ActivationKernels.BiasAdd_Scalar,
    };

    private static delegate*<float*, float*, float*, nint, void> AddKernel(string variant) => variant switch
    {
        "v512" => &ActivationKernels.Add_Vector512,
        "v256" => &ActivationKernels.Add_Vector256,
        _ => &ActivationKernels.Add_Scalar,
    };

    private static delegate*<float*, float*, float*, nint, nint, void> AddRowScaledKernel(string variant) => variant switch
    {
        "v512" => &ActivationKernels.AddRowScaled_Vector512,
        "v256" => &ActivationKernels.AddRowScaled_Vector256,
        _ => &ActivationKernels.AddRowScaled_Scalar,
    };

    /// <summary>A dense sweep of [-12, 12] (1/1024 steps), random values up to +-100, and the extremes.</summary>
    private static float[] AccuracyInputs()
    {
        var inputs = new List<float>();
        for (int i = -12 * 1024; i <= 12 * 1024; i++)
        {
            inputs.Add(i / 1024f);
        }
        inputs.AddRange(NormTestData.Random(100_000, 3, 100));
        inputs.AddRange([0f, -0f, 1e-30f, -1e-30f, 5.42f, -5.42f, 87.5f, -87.5f, 89f, -89f, 1e4f, -1e4f, 3e38f, -3e38f]);
        return inputs.ToArray();
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Activations_match_their_double_precision_definitions(string variant)
    {
        float[] x = AccuracyInputs();
        var y = new float[x.Length];
        foreach (Activation activation in NormTestData.Activations)
        {
            fixed (float* src = x)
            fixed (float* dst = y)
            {
                ApplyKernel(variant)(activation, src, dst, x.Length);
            }
            for (int i = 0; i < x.Length; i++)
            {
                NormTestData.AssertActivation(activation, x[i], y[i], variant);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Apply_every_length_in_and_out_of_place_matches_the_reference(string variant)
    {
        foreach (Activation activation in NormTestData.Activations)
        {
            foreach (int length in Enumerable.Range(0, 71).Append(1000))
            {
                for (int offset = 0; offset < 2; offset++)
                {
                    float[] x = NormTestData.Random(length + offset, length, 6);
                    var outOfPlace = new float[length + offset + 1];
                    float[] inPlace = [.. x, Sentinel];
                    outOfPlace[^1] = Sentinel;
                    fixed (float* src = x)
                    fixed (float* dst = outOfPlace)
                    fixed (float* both = inPlace)
                    {
                        ApplyKernel(variant)(activation, src + offset, dst + offset, length);
                        ApplyKernel(variant)(activation, both + offset, both + offset, length);
                    }
                    for (int i = offset; i < offset + length; i++)
                    {
                        NormTestData.AssertActivation(activation, x[i], outOfPlace[i], $"{variant} out of place, length {length}");
                        Assert.Equal(outOfPlace[i], inPlace[i]);
                    }
                    Assert.Equal(Sentinel, outOfPlace[^1]);
                    Assert.Equal(Sentinel, inPlace[^1]);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Geglu_multiplies_the_value_half_by_gelu_of_the_gate_half(string variant)
    {
        foreach (int features in NormTestData.Channels)
        {
            foreach (int rows in new[] { 1, 2, 7 })
            {
                float[] src = NormTestData.Random(rows * 2 * features, features * 31 + rows, 4);
                int stride = features + 3; // gaps between output rows must stay untouched
                var dst = new float[rows * stride];
                Array.Fill(dst, Sentinel);
                float[] inPlace = (float[])src.Clone();
                fixed (float* s = src)
                fixed (float* d = dst)
                fixed (float* p = inPlace)
                {
                    GegluKernel(variant)(s, d, rows, features, stride);
                    GegluKernel(variant)(p, p, rows, features, 2 * features);
                }
                for (int r = 0; r < rows; r++)
                {
                    for (int j = 0; j < features; j++)
                    {
                        float value = src[r * 2 * features + j];
                        float gate = src[r * 2 * features + features + j];
                        double expected = value * NormTestData.Exact(Activation.Gelu, gate);
                        float actual = dst[r * stride + j];
                        if (!(Math.Abs(actual - expected) <= 1e-6 * Math.Max(1, Math.Abs(gate)) * Math.Max(1, Math.Abs(value))))
                        {
                            Assert.Fail($"{variant} F={features} [{r},{j}]: {actual:R} vs {expected:R}");
                        }
                        Assert.Equal(actual, inPlace[r * 2 * features + j]);
                        Assert.Equal(gate, inPlace[r * 2 * features + features + j]); // the gate half is only read
                    }
                    for (int j = features; j < stride; j++)
                    {
                        Assert.Equal(Sentinel, dst[r * stride + j]);
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void BiasAdd_with_fused_activation_matches_the_reference(string variant)
    {
        foreach (int channels in NormTestData.Channels)
        {
            foreach (int rows in NormTestData.Rows)
            {
                float[] x = NormTestData.Random(rows * channels, channels + rows, 3);
                float[] bias = NormTestData.Random(channels, channels, 2);
                foreach (Activation activation in NormTestData.Activations)
                {
                    float[] outOfPlace = [.. new float[x.Length], Sentinel];
                    float[] inPlace = [.. x, Sentinel];
                    fixed (float* s = x)
                    fixed (float* b = bias)
                    fixed (float* d = outOfPlace)
                    fixed (float* p = inPlace)
                    {
                        BiasAddKernel(variant)(s, b, d, rows, channels, activation);
                        BiasAddKernel(variant)(p, b, p, rows, channels, activation);
                    }
                    for (int i = 0; i < x.Length; i++)
                    {
                        float preActivation = x[i] + bias[i % channels];
                        NormTestData.AssertActivation(activation, preActivation, outOfPlace[i], $"{variant} C={channels} rows={rows}");
                        Assert.Equal(outOfPlace[i], inPlace[i]);
                    }
                    Assert.Equal(Sentinel, outOfPlace[^1]);
                    Assert.Equal(Sentinel, inPlace[^1]);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Add_is_exact_and_may_write_over_either_operand(string variant)
    {
        foreach (int length in Enumerable.Range(0, 71).Append(1001))
        {
            float[] a = NormTestData.Random(length, length, 5);
            float[] b = NormTestData.Random(length, length + 1000, 5);
            float[] sum = [.. new float[length], Sentinel];
            float[] intoA = [.. a, Sentinel];
            float[] intoB = [.. b, Sentinel];
            fixed (float* pa = a)
            fixed (float* pb = b)
            fixed (float* ps = sum)
            fixed (float* ia = intoA)
            fixed (float* ib = intoB)
            {
                AddKernel(variant)(pa, pb, ps, length);
                AddKernel(variant)(ia, pb, ia, length);
                AddKernel(variant)(pa, ib, ib, length);
            }
            for (int i = 0; i < length; i++)
            {
                Assert.Equal(a[i] + b[i], sum[i]);
                Assert.Equal(sum[i], intoA[i]);
                Assert.Equal(sum[i], intoB[i]);
            }
            Assert.Equal(Sentinel, sum[^1]);
            Assert.Equal(Sentinel, intoA[^1]);
            Assert.Equal(Sentinel, intoB[^1]);
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void AddRowScaled_is_one_fused_multiply_add_per_value(string variant)
    {
        foreach (int channels in Enumerable.Range(1, 40).Append(320))
        {
            const int rows = 3;
            float[] src = NormTestData.Random(rows * channels, channels, 5);
            float[] scales = [0.25f, 0f, -1.5f];
            float[] start = NormTestData.Random(rows * channels, channels + 500, 5);
            float[] acc = [.. start, Sentinel];
            fixed (float* s = src)
            fixed (float* w = scales)
            fixed (float* a = acc)
            {
                AddRowScaledKernel(variant)(s, w, a, rows, channels);
            }
            for (int i = 0; i < rows * channels; i++)
            {
                Assert.Equal(MathF.FusedMultiplyAdd(scales[i / channels], src[i], start[i]), acc[i]);
            }
            Assert.Equal(Sentinel, acc[^1]);
        }
    }

    [Fact]
    public void Dispatch_entry_points_tile_large_calls_like_the_reference()
    {
        const int rows = 300, channels = 330; // 99,000 floats: above the serial threshold, ragged tiles
        float[] x = NormTestData.Random(rows * channels, 11, 4);
        float[] bias = NormTestData.Random(channels, 12);
        foreach (Activation activation in NormTestData.Activations)
        {
            var expected = new float[x.Length];
            var actual = new float[x.Length];
            fixed (float* s = x)
            fixed (float* e = expected)
            {
                ActivationKernels.Apply_Scalar(activation, s, e, x.Length);
            }
            Pointwise.Apply(activation, x, actual);
            NormTestData.AssertClose(expected, actual, 5e-6, $"Apply {activation}");

            fixed (float* s = x)
            fixed (float* b = bias)
            fixed (float* e = expected)
            {
                ActivationKernels.BiasAdd_Scalar(s, b, e, rows, channels, activation);
            }
            Pointwise.BiasAdd(x, bias, actual, activation);
            NormTestData.AssertClose(expected, actual, 5e-6, $"BiasAdd {activation}");
        }

        var geglu = new float[rows * channels / 2];
        var gegluExpected = new float[geglu.Length];
        fixed (float* s = x)
        fixed (float* e = gegluExpected)
        {
            ActivationKernels.Geglu_Scalar(s, e, rows, channels / 2, channels / 2);
        }
        Pointwise.Geglu(x, geglu, channels / 2);
        NormTestData.AssertClose(gegluExpected, geglu, 1e-5, "Geglu");

        var sum = new float[x.Length];
        Pointwise.Add(x, x, sum);
        for (int i = 0; i < x.Length; i++)
        {
            Assert.Equal(x[i] + x[i], sum[i]);
        }

        float[] rowScales = NormTestData.Random(rows, 13, 2);
        var scaled = (float[])x.Clone();
        fixed (float* s = x)
        fixed (float* w = rowScales)
        fixed (float* a = scaled)
        {
            Pointwise.AddRowScaled(s, w, a, rows, channels);
        }
        for (int i = 0; i < x.Length; i++)
        {
            Assert.Equal(MathF.FusedMultiplyAdd(rowScales[i / channels], x[i], x[i]), scaled[i]);
        }
    }

    [Fact]
    public void Span_entry_points_reject_mismatched_lengths()
    {
        Assert.Throws<ArgumentException>(() => Pointwise.Apply(Activation.Silu, new float[5], new float[4]));
        Assert.Throws<ArgumentException>(() => Pointwise.Add(new float[5], new float[4], new float[5]));
        Assert.Throws<ArgumentException>(() => Pointwise.BiasAdd(new float[10], new float[3], new float[10]));
        Assert.Throws<ArgumentException>(() => Pointwise.Geglu(new float[10], new float[5], 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Pointwise.Apply((Activation)99, new float[5], new float[5]));
    }
}
