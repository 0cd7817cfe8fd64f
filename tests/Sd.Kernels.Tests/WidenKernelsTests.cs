using System.Runtime.Intrinsics;
using Sd.Kernels;
using Sd.Kernels.Convert;

namespace Sd.Kernels.Tests;

/// <summary>
/// F16/BF16 widening is exact, so every variant must match the oracle bit for bit: all 65536 inputs, and every
/// length 0..257 so the overlapping-last-vector remainder and the short scalar path are both exercised.
/// </summary>
public unsafe class WidenKernelsTests
{
    public static TheoryData<string> Variants()
    {
        var data = new TheoryData<string> { "scalar" };
        if (Vector256.IsHardwareAccelerated) data.Add("v256");
        if (Vector512.IsHardwareAccelerated) data.Add("v512");
        return data;
    }

    private static delegate*<ushort*, float*, nint, void> F16(string variant) => variant switch
    {
        "v512" => &WidenKernels.F16ToF32_Vector512,
        "v256" => &WidenKernels.F16ToF32_Vector256,
        _ => &WidenKernels.F16ToF32_Scalar,
    };

    private static delegate*<ushort*, float*, nint, void> BF16(string variant) => variant switch
    {
        "v512" => &WidenKernels.BF16ToF32_Vector512,
        "v256" => &WidenKernels.BF16ToF32_Vector256,
        _ => &WidenKernels.BF16ToF32_Scalar,
    };

    private static ushort[] AllPatterns()
    {
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++)
        {
            all[i] = (ushort)i;
        }
        return all;
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void F16_every_bit_pattern_matches_System_Half(string variant)
    {
        ushort[] input = AllPatterns();
        var output = new float[input.Length];
        fixed (ushort* src = input)
        fixed (float* dst = output)
        {
            F16(variant)(src, dst, input.Length);
        }
        for (int i = 0; i < input.Length; i++)
        {
            uint expected = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(input[i]));
            uint actual = BitConverter.SingleToUInt32Bits(output[i]);
            if (float.IsNaN(output[i]))
            {
                // System.Half quiets signalling NaNs; the kernel (like PyTorch's bit conversion) keeps the payload
                // as is. Sign and payload must survive either way.
                expected |= 0x0040_0000;
                actual |= 0x0040_0000;
            }
            Assert.True(expected == actual, $"{variant}: 0x{input[i]:X4} -> 0x{actual:X8}, expected 0x{expected:X8}");
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Finite_F16_path_is_exact_on_every_finite_pattern_and_every_length(string variant)
    {
        delegate*<ushort*, float*, nint, void> kernel = variant switch
        {
            "v512" => &WidenKernels.FiniteF16ToF32_Vector512,
            "v256" => &WidenKernels.FiniteF16ToF32_Vector256,
            _ => &WidenKernels.FiniteF16ToF32_Scalar,
        };
        var finite = new List<ushort>();
        for (int i = 0; i < 65536; i++)
        {
            if ((i & 0x7C00) != 0x7C00) finite.Add((ushort)i);
        }
        ushort[] input = finite.ToArray();
        foreach (int length in new[] { input.Length, 0, 1, 15, 17, 33 })
        {
            var output = new float[length + 1];
            output[^1] = 12345f;
            fixed (ushort* src = input)
            fixed (float* dst = output)
            {
                kernel(src + (input.Length - length), dst, length);
            }
            for (int i = 0; i < length; i++)
            {
                ushort h = input[input.Length - length + i];
                Assert.True(BitConverter.SingleToUInt32Bits(WidenKernels.F16ToF32(h)) == BitConverter.SingleToUInt32Bits(output[i]),
                    $"{variant}: 0x{h:X4} -> {output[i]}");
            }
            Assert.Equal(12345f, output[^1]);
        }
    }

    [Fact]
    public void Non_finite_F16_values_are_found()
    {
        var values = new ushort[100];
        fixed (ushort* p = values)
        {
            Assert.False(WidenKernels.HasNonFiniteF16(p, values.Length));
            foreach (int index in new[] { 3, 64, 99 })
            {
                values[index] = 0xFC00; // -Inf
                Assert.True(WidenKernels.HasNonFiniteF16(p, values.Length));
                values[index] = 0x7E01; // NaN
                Assert.True(WidenKernels.HasNonFiniteF16(p, values.Length));
                values[index] = 0x7BFF; // 65504, the largest finite
                Assert.False(WidenKernels.HasNonFiniteF16(p, values.Length));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void BF16_every_bit_pattern_is_the_high_half(string variant)
    {
        ushort[] input = AllPatterns();
        var output = new float[input.Length];
        fixed (ushort* src = input)
        fixed (float* dst = output)
        {
            BF16(variant)(src, dst, input.Length);
        }
        for (int i = 0; i < input.Length; i++)
        {
            Assert.Equal((uint)input[i] << 16, BitConverter.SingleToUInt32Bits(output[i]));
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Every_length_and_offset_converts_exactly_and_writes_nothing_past_the_end(string variant)
    {
        var random = new Random(1234);
        for (int length = 0; length <= 257; length++)
        {
            for (int offset = 0; offset < 3; offset++)
            {
                var input = new ushort[length + offset];
                for (int i = 0; i < input.Length; i++)
                {
                    input[i] = (ushort)random.Next(65536);
                }
                var f16 = new float[length + offset + 1];
                var bf16 = new float[length + offset + 1];
                f16[^1] = bf16[^1] = 12345f; // sentinel after the destination
                fixed (ushort* src = input)
                fixed (float* d1 = f16)
                fixed (float* d2 = bf16)
                {
                    F16(variant)(src + offset, d1 + offset, length);
                    BF16(variant)(src + offset, d2 + offset, length);
                }
                for (int i = offset; i < offset + length; i++)
                {
                    Assert.Equal(BitConverter.SingleToUInt32Bits(WidenKernels.F16ToF32(input[i])), BitConverter.SingleToUInt32Bits(f16[i]));
                    Assert.Equal((uint)input[i] << 16, BitConverter.SingleToUInt32Bits(bf16[i]));
                }
                Assert.Equal(12345f, f16[^1]);
                Assert.Equal(12345f, bf16[^1]);
            }
        }
    }

    [Fact]
    public void Span_entry_point_rejects_a_short_destination()
    {
        Assert.Throws<ArgumentException>(() => Widen.F16ToF32(new ushort[5], new float[4]));
    }

    [Fact]
    public void Dispatch_level_matches_the_hardware()
    {
        SimdLevel expected = Vector512.IsHardwareAccelerated ? SimdLevel.Vector512
            : Vector256.IsHardwareAccelerated ? SimdLevel.Vector256 : SimdLevel.Scalar;
        Assert.Equal(expected, Simd.Level);
    }
}
