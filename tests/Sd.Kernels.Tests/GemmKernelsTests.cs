using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Gemm;

namespace Sd.Kernels.Tests;

/// <summary>
/// Every GEMM variant against the triple-loop reference on awkward shapes: sizes not multiples of MR/NR/Kc,
/// remainders in every dimension, leading dimensions wider than the matrices, bias and residual (also in place).
/// </summary>
public unsafe class GemmKernelsTests
{
    public static TheoryData<string> Variants()
    {
        var data = new TheoryData<string> { "scalar" };
        if (Vector256.IsHardwareAccelerated) data.Add("v256");
        if (Vector512.IsHardwareAccelerated) data.Add("v512");
        return data;
    }

    private static GemmVariant Variant(string name) => name switch
    {
        "v512" => GemmVariant.Vector512,
        "v256" => GemmVariant.Vector256,
        _ => GemmVariant.Scalar,
    };

    private static readonly (int M, int N, int K)[] Shapes =
    [
        (1, 1, 1), (1, 33, 7), (13, 1, 5), (14, 32, 256), (15, 33, 257), (29, 17, 3), (100, 77, 300),
        (257, 65, 513), (3, 320, 40), (77, 96, 64),
    ];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Matches_the_reference_on_awkward_shapes(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(42);
        foreach ((int m, int n, int k) in Shapes)
        {
            foreach (bool epilogue in new[] { false, true })
            {
                int lda = k + 3, ldw = k + 1, ldc = n + 5;
                float[] a = RandomArray(random, m * lda);
                float[] w = RandomArray(random, n * ldw);
                float[] bias = RandomArray(random, n);
                float[] residual = RandomArray(random, m * ldc);
                var expected = new float[m * ldc];
                var actual = new float[m * ldc];
                Array.Fill(actual, 999f); // the columns past n must stay untouched
                Array.Fill(expected, 999f);
                fixed (float* pa = a, pw = w, pb = bias, pr = residual, pe = expected, pc = actual)
                {
                    GemmKernels.Reference(m, n, k, pa, lda, pw, ldw, pe, ldc, epilogue ? pb : null, epilogue ? pr : null, ldc);
                    using PackedWeights packed = PackedWeights.Pack(pw, n, k, ldw, variant.Nr);
                    GemmKernels.Multiply(variant, m, pa, lda, packed, pc, ldc, epilogue ? pb : null, epilogue ? pr : null, ldc);
                }
                AssertClose(expected, actual, k, $"{name} {m}x{n}x{k} epilogue={epilogue}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Residual_may_alias_the_output_for_in_place_skip_connections(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(3);
        const int m = 45, n = 50, k = 600;
        float[] a = RandomArray(random, m * k);
        float[] w = RandomArray(random, n * k);
        float[] c = RandomArray(random, m * n);
        var expected = new float[m * n];
        fixed (float* pa = a, pw = w, pc = c, pe = expected)
        {
            GemmKernels.Reference(m, n, k, pa, k, pw, k, pe, n, null, pc, n);
            using PackedWeights packed = PackedWeights.Pack(pw, n, k, k, variant.Nr);
            GemmKernels.Multiply(variant, m, pa, k, packed, pc, n, null, pc, n);
        }
        AssertClose(expected, c, k, name);
    }

    [Fact]
    public void Sixteen_bit_weights_pack_to_the_same_panels_as_their_float_values()
    {
        const int n = 37, k = 19;
        var random = new Random(5);
        var halves = new ushort[n * k];
        var floats = new float[n * k];
        for (int i = 0; i < halves.Length; i++)
        {
            Half h = (Half)(random.NextSingle() * 4 - 2);
            halves[i] = BitConverter.HalfToUInt16Bits(h);
            floats[i] = (float)h;
        }
        fixed (ushort* ph = halves)
        fixed (float* pf = floats)
        {
            using PackedWeights fromHalf = PackedWeights.Pack(ph, n, k, k, bfloat16: false, 32);
            using PackedWeights fromFloat = PackedWeights.Pack(pf, n, k, k, 32);
            long count = fromHalf.SizeInBytes / sizeof(float);
            Assert.True(new ReadOnlySpan<float>(fromHalf.Data, (int)count).SequenceEqual(new ReadOnlySpan<float>(fromFloat.Data, (int)count)));
        }
    }

    [Fact]
    public void Weights_packed_for_another_kernel_are_refused()
    {
        float* w = stackalloc float[4];
        using PackedWeights packed = PackedWeights.Pack(w, 2, 2, 2, 7);
        float* a = stackalloc float[4];
        float* c = stackalloc float[4];
        Assert.Throws<ArgumentException>(() => GemmKernels.Multiply(GemmVariant.Scalar, 2, a, 2, packed, c, 2, null, null, 0));
    }

    internal static float[] RandomArray(Random random, int length)
    {
        var values = new float[length];
        for (int i = 0; i < values.Length; i++) values[i] = random.NextSingle() * 2 - 1;
        return values;
    }

    /// <summary>Sums of k products of values in [-1,1]: float rounding differs with summation order, ~sqrt(k) ulp.</summary>
    private static void AssertClose(float[] expected, float[] actual, int k, string what)
    {
        float tolerance = 1e-5f * MathF.Sqrt(k) + 1e-6f;
        for (int i = 0; i < expected.Length; i++)
        {
            float scale = Math.Max(1f, Math.Abs(expected[i]));
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance * scale))
            {
                Assert.Fail($"{what}: element {i}: {actual[i]} vs {expected[i]}");
            }
        }
    }
}
