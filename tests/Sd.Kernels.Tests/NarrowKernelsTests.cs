using System.Runtime.Intrinsics;
using Sd.Kernels.Convert;

namespace Sd.Kernels.Tests;

/// <summary>
/// float32 to F16/BF16 rounding to nearest even: every vector variant gives the scalar reference's bits (System.Half's
/// conversion; the BF16 carry rule) on a sweep of the whole float32 bit space (every 4093rd pattern, both signs), on
/// the rounding ties and range edges, and on every length 0..40 so the overlapping last vector and the short scalar
/// path both run. NaN must stay NaN with its sign.
/// </summary>
public unsafe class NarrowKernelsTests
{
    public static TheoryData<string> Variants()
    {
        var data = new TheoryData<string> { "scalar" };
        if (Vector256.IsHardwareAccelerated) data.Add("v256");
        if (Vector512.IsHardwareAccelerated) data.Add("v512");
        return data;
    }

    private static delegate*<float*, ushort*, nint, void> Kernel(string format, string variant) => (format, variant) switch
    {
        ("f16", "v512") => &NarrowKernels.F32ToF16_Vector512,
        ("f16", "v256") => &NarrowKernels.F32ToF16_Vector256,
        ("f16", _) => &NarrowKernels.F32ToF16_Scalar,
        ("bf16", "v512") => &NarrowKernels.F32ToBF16_Vector512,
        ("bf16", "v256") => &NarrowKernels.F32ToBF16_Vector256,
        _ => &NarrowKernels.F32ToBF16_Scalar,
    };

    /// <summary>The sweep plus the edges: F16's rounding ties, its largest finite and overflow point, its subnormals.</summary>
    private static float[] Inputs()
    {
        var bits = new List<uint>();
        for (ulong b = 0; b <= uint.MaxValue; b += 4093)
        {
            bits.Add((uint)b);
        }
        uint[] edges =
        [
            0, 0x3380_0000, 0x3380_0001, 0x3300_0000, 0x3300_0001, // 2^-24 (F16's smallest), half of it: a tie to 0
            0x387F_E000, 0x387F_F000, 0x3880_0000, 0x3880_1000, 0x3880_3000, // the subnormal/normal border and ties
            0x3F80_1000, 0x3F80_3000, 0x3F80_1001, 0x3F80_2FFF, // ties to even on both sides of 1.0
            0x477F_E000, 0x477F_EFFF, 0x477F_F000, 0x477F_F001, 0x4780_0000, // 65504, below and at 65520, 65536
            0x7F7F_FFFF, 0x7F80_0000, 0x7F80_0001, 0x7FC0_0000, 0x7FFF_FFFF, // max float, Inf, NaNs
            0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0x7F7F_8000, // BF16 ties and its overflow to Inf
        ];
        foreach (uint edge in edges)
        {
            bits.Add(edge);
            bits.Add(edge | 0x8000_0000);
        }
        return bits.Select(BitConverter.UInt32BitsToSingle).ToArray();
    }

    private static ushort Reference(string format, float value) => format == "f16"
        ? BitConverter.HalfToUInt16Bits((Half)value)
        : float.IsNaN(value) ? (ushort)((BitConverter.SingleToUInt32Bits(value) >> 16) | 0x40)
        : (ushort)((BitConverter.SingleToUInt32Bits(value) + 0x7FFFu + ((BitConverter.SingleToUInt32Bits(value) >> 16) & 1)) >> 16);

    [Theory]
    [MemberData(nameof(Variants))]
    public void Every_variant_rounds_as_the_reference(string variant)
    {
        float[] input = Inputs();
        foreach (string format in new[] { "f16", "bf16" })
        {
            var output = new ushort[input.Length];
            fixed (float* src = input)
            fixed (ushort* dst = output)
            {
                Kernel(format, variant)(src, dst, input.Length);
            }
            ushort nanExponent = format == "f16" ? (ushort)0x7C00 : (ushort)0x7F80;
            for (int i = 0; i < input.Length; i++)
            {
                ushort expected = Reference(format, input[i]), actual = output[i];
                if (float.IsNaN(input[i]))
                {
                    // A quiet NaN of the same sign; the payload may differ from System.Half's.
                    Assert.True((actual & nanExponent) == nanExponent && (actual & ~(0x8000 | nanExponent)) != 0 && (actual >> 15) == (expected >> 15),
                        $"{format} {variant}: NaN 0x{BitConverter.SingleToUInt32Bits(input[i]):X8} -> 0x{actual:X4}");
                    continue;
                }
                Assert.True(expected == actual,
                    $"{format} {variant}: 0x{BitConverter.SingleToUInt32Bits(input[i]):X8} ({input[i]}) -> 0x{actual:X4}, expected 0x{expected:X4}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Every_length_is_converted_and_nothing_past_it_written(string variant)
    {
        var random = new Random(7);
        float[] input = Enumerable.Range(0, 40).Select(_ => (float)(random.NextDouble() * 200 - 100)).ToArray();
        foreach (string format in new[] { "f16", "bf16" })
        {
            for (int length = 0; length <= input.Length; length++)
            {
                var output = new ushort[length + 1];
                output[^1] = 0xABCD;
                fixed (float* src = input)
                fixed (ushort* dst = output)
                {
                    Kernel(format, variant)(src, dst, length);
                }
                for (int i = 0; i < length; i++)
                {
                    Assert.Equal(Reference(format, input[i]), output[i]);
                }
                Assert.Equal(0xABCD, output[^1]);
            }
        }
    }

    [Fact]
    public void The_span_entry_points_check_the_destination()
    {
        Assert.Throws<ArgumentException>(() => Narrow.F32ToF16(new float[4], new ushort[3]));
        var bits = new ushort[2];
        Narrow.F32ToBF16([1f, -2f], bits);
        Assert.Equal(new ushort[] { 0x3F80, 0xC000 }, bits);
        Narrow.F32ToF16([1f, 65520f], bits);
        Assert.Equal(new ushort[] { 0x3C00, 0x7C00 }, bits);
    }
}
