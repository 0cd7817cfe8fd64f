using static Sd.Loaders.Jpeg.IslowConstants;

namespace Sd.Loaders.Jpeg;

/// <summary>
/// Dequantization and the 8x8 inverse DCT in 32-bit fixed point, with libjpeg's "islow" arithmetic (Loeffler,
/// Ligtenberg and Moschytz's 12-multiply form: 13-bit constants, 2 extra bits between the passes, rounding shifts),
/// the method libjpeg(-turbo) and so Pillow use by default. Matching it bit for bit is what makes a decoded JPEG
/// equal Pillow's; any exact IDCT differs from it by a unit here and there.
/// Reference: libjpeg's jidctint.c (jpeg_idct_islow).
/// </summary>
internal static class IslowIdct
{
    /// <summary>
    /// Writes the 8x8 samples of <paramref name="coefficients"/> (natural order) dequantized by
    /// <paramref name="quant"/> to <paramref name="output"/>, rows <paramref name="stride"/> bytes apart.
    /// </summary>
    public static void Transform(ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int stride)
    {
        Span<int> work = stackalloc int[64];
        for (int column = 0; column < 8; column++)
        {
            OneDimension(
                coefficients[column] * quant[column], coefficients[8 + column] * quant[8 + column],
                coefficients[16 + column] * quant[16 + column], coefficients[24 + column] * quant[24 + column],
                coefficients[32 + column] * quant[32 + column], coefficients[40 + column] * quant[40 + column],
                coefficients[48 + column] * quant[48 + column], coefficients[56 + column] * quant[56 + column],
                ConstBits - Pass1Bits, work[column..], 8);
        }
        Span<int> row = stackalloc int[8];
        for (int y = 0; y < 8; y++)
        {
            Span<int> w = work.Slice(y * 8, 8);
            OneDimension(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], ConstBits + Pass1Bits + 3, row, 1);
            Span<byte> line = output.Slice(y * stride, 8);
            for (int x = 0; x < 8; x++)
                line[x] = RangeLimit(row[x]);
        }
    }

    /// <summary>
    /// One 1-D IDCT: the even part from inputs 0, 2, 4, 6, the odd part from 1, 3, 5, 7, each output descaled by
    /// <paramref name="shift"/> bits with rounding and written <paramref name="step"/> apart.
    /// </summary>
    private static void OneDimension(int in0, int in1, int in2, int in3, int in4, int in5, int in6, int in7, int shift,
        Span<int> output, int step)
    {
        // Even part: the rotator is sqrt(2) * c(-6).
        int z1 = (in2 + in6) * F0_541196100;
        int tmp2 = z1 - in6 * F1_847759065;
        int tmp3 = z1 + in2 * F0_765366865;
        int tmp0 = (in0 + in4) << ConstBits;
        int tmp1 = (in0 - in4) << ConstBits;
        int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3;
        int tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;

        // Odd part: inputs 7, 5, 3, 1 as tmp0..tmp3.
        tmp0 = in7;
        tmp1 = in5;
        tmp2 = in3;
        tmp3 = in1;
        z1 = tmp0 + tmp3;
        int z2 = tmp1 + tmp2;
        int z3 = tmp0 + tmp2;
        int z4 = tmp1 + tmp3;
        int z5 = (z3 + z4) * F1_175875602;
        tmp0 *= F0_298631336;
        tmp1 *= F2_053119869;
        tmp2 *= F3_072711026;
        tmp3 *= F1_501321110;
        z1 *= -F0_899976223;
        z2 *= -F2_562915447;
        z3 = z3 * -F1_961570560 + z5;
        z4 = z4 * -F0_390180644 + z5;
        tmp0 += z1 + z3;
        tmp1 += z2 + z4;
        tmp2 += z2 + z3;
        tmp3 += z1 + z4;

        int round = 1 << (shift - 1);
        output[0] = (tmp10 + tmp3 + round) >> shift;
        output[7 * step] = (tmp10 - tmp3 + round) >> shift;
        output[step] = (tmp11 + tmp2 + round) >> shift;
        output[6 * step] = (tmp11 - tmp2 + round) >> shift;
        output[2 * step] = (tmp12 + tmp1 + round) >> shift;
        output[5 * step] = (tmp12 - tmp1 + round) >> shift;
        output[3 * step] = (tmp13 + tmp0 + round) >> shift;
        output[4 * step] = (tmp13 - tmp0 + round) >> shift;
    }

    /// <summary>
    /// libjpeg's post-IDCT range limit: the sample plus 128, clamped to 0-255, taken modulo 1024 first, so values
    /// far out of range (only from damaged data) wrap as libjpeg's table lookup makes them.
    /// </summary>
    private static byte RangeLimit(int value)
    {
        int index = value & 1023;
        return index < 128 ? (byte)(index + 128) : index < 512 ? (byte)255 : index < 896 ? (byte)0 : (byte)(index - 896);
    }
}
