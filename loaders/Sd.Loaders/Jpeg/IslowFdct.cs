using System.Numerics;
using static Sd.Loaders.Jpeg.IslowConstants;

namespace Sd.Loaders.Jpeg;

/// <summary>
/// The 8x8 forward DCT in 32-bit fixed point with libjpeg's "islow" arithmetic (the inverse of
/// <see cref="IslowIdct"/>: the same 13-bit constants, 2 extra bits between the passes, rounding shifts; the results
/// are 8 times the DCT's), then quantization as libjpeg-turbo does it: multiplying by a 16-bit reciprocal with a
/// correction instead of dividing. Matching both bit for bit is what makes a written JPEG equal Pillow's.
/// Reference: libjpeg's jfdctint.c (jpeg_fdct_islow); libjpeg-turbo's jcdctmgr.c (compute_reciprocal, quantize).
/// </summary>
internal static class IslowFdct
{
    /// <summary>
    /// libjpeg-turbo's divisors for a quantization table (natural order): per coefficient the reciprocal, the
    /// rounding correction and the shift that stand for dividing the DCT output by 8 x the table's value.
    /// </summary>
    public static uint[] Divisors(ReadOnlySpan<ushort> table)
    {
        var divisors = new uint[3 * 64];
        for (int i = 0; i < 64; i++)
        {
            uint divisor = (uint)table[i] << 3;
            int b = 31 - BitOperations.LeadingZeroCount(divisor);
            int r = 16 + b;
            uint fq = (1u << r) / divisor, fr = (1u << r) % divisor, c = divisor / 2;
            if (fr == 0)
            {
                // A power of two: the reciprocal would need 17 bits, so halve it and shift one less.
                fq >>= 1;
                r--;
            }
            else if (fr <= divisor / 2)
            {
                c++;
            }
            else
            {
                fq++;
            }
            divisors[i] = fq;
            divisors[64 + i] = c;
            divisors[128 + i] = (uint)r;
        }
        return divisors;
    }

    /// <summary>
    /// Transforms the 8x8 samples at <paramref name="samples"/> (rows <paramref name="stride"/> bytes apart) and
    /// writes the quantized coefficients to <paramref name="coefficients"/> in natural order.
    /// </summary>
    public static void Transform(ReadOnlySpan<byte> samples, int stride, ReadOnlySpan<uint> divisors, Span<short> coefficients)
    {
        Span<int> work = stackalloc int[64];
        for (int row = 0; row < 8; row++)
        {
            ReadOnlySpan<byte> s = samples.Slice(row * stride, 8);
            OneDimension(work.Slice(row * 8), 1, s[0] - 128, s[1] - 128, s[2] - 128, s[3] - 128, s[4] - 128, s[5] - 128, s[6] - 128, s[7] - 128,
                evenShift: -Pass1Bits, oddShift: ConstBits - Pass1Bits);
        }
        for (int column = 0; column < 8; column++)
        {
            OneDimension(work.Slice(column), 8, work[column], work[8 + column], work[16 + column], work[24 + column],
                work[32 + column], work[40 + column], work[48 + column], work[56 + column],
                evenShift: Pass1Bits, oddShift: ConstBits + Pass1Bits);
        }
        for (int i = 0; i < 64; i++)
        {
            int value = work[i];
            uint magnitude = (uint)Math.Abs(value);
            uint quotient = (uint)((ulong)(magnitude + divisors[64 + i]) * divisors[i] >> (int)divisors[128 + i]);
            coefficients[i] = (short)(value < 0 ? -(int)quotient : (int)quotient);
        }
    }

    /// <summary>
    /// One 8-point DCT of x0..x7 into out[0], out[step], ... out[7 step]. Terms 0 and 4 are shifted by
    /// <paramref name="evenShift"/> (left when negative, in the first pass; right with rounding in the second), the
    /// others descaled by <paramref name="oddShift"/> bits with rounding.
    /// </summary>
    private static void OneDimension(Span<int> output, int step, int x0, int x1, int x2, int x3, int x4, int x5, int x6, int x7,
        int evenShift, int oddShift)
    {
        int tmp0 = x0 + x7, tmp7 = x0 - x7;
        int tmp1 = x1 + x6, tmp6 = x1 - x6;
        int tmp2 = x2 + x5, tmp5 = x2 - x5;
        int tmp3 = x3 + x4, tmp4 = x3 - x4;

        // Even part.
        int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3;
        int tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
        output[0] = evenShift < 0 ? (tmp10 + tmp11) << -evenShift : Descale(tmp10 + tmp11, evenShift);
        output[4 * step] = evenShift < 0 ? (tmp10 - tmp11) << -evenShift : Descale(tmp10 - tmp11, evenShift);
        int z1 = (tmp12 + tmp13) * F0_541196100;
        output[2 * step] = Descale(z1 + tmp13 * F0_765366865, oddShift);
        output[6 * step] = Descale(z1 - tmp12 * F1_847759065, oddShift);

        // Odd part (Loeffler's figure 8, with the factor of sqrt(2) the paper leaves out).
        z1 = tmp4 + tmp7;
        int z2 = tmp5 + tmp6, z3 = tmp4 + tmp6, z4 = tmp5 + tmp7;
        int z5 = (z3 + z4) * F1_175875602;
        tmp4 *= F0_298631336;
        tmp5 *= F2_053119869;
        tmp6 *= F3_072711026;
        tmp7 *= F1_501321110;
        z1 *= -F0_899976223;
        z2 *= -F2_562915447;
        z3 = z3 * -F1_961570560 + z5;
        z4 = z4 * -F0_390180644 + z5;
        output[7 * step] = Descale(tmp4 + z1 + z3, oddShift);
        output[5 * step] = Descale(tmp5 + z2 + z4, oddShift);
        output[3 * step] = Descale(tmp6 + z2 + z3, oddShift);
        output[step] = Descale(tmp7 + z1 + z4, oddShift);
    }

    private static int Descale(int x, int n) => (x + (1 << (n - 1))) >> n;
}
