namespace Sd.Loaders.Webp;

/// <summary>
/// VP8's inverse transforms (RFC 6386 section 14) with libwebp's integer arithmetic: the 4x4 DCT added to a predicted
/// block, and the Walsh-Hadamard transform that gives a 16x16 block's sixteen DC coefficients. A block whose
/// coefficients are all zero may skip the DCT; the result is the same.
/// </summary>
internal static class Vp8Transforms
{
    /// <summary>Inverse DCT of <paramref name="coefficients"/> (16, row-major), added to the 4x4 block at
    /// <paramref name="at"/> of a buffer with stride <see cref="Vp8Intra.Stride"/>.</summary>
    public static void AddInverseDct(ReadOnlySpan<short> coefficients, Span<byte> b, int at)
    {
        Span<int> t = stackalloc int[16];
        for (int i = 0; i < 4; i++) // columns
        {
            int a = coefficients[i] + coefficients[8 + i];
            int bb = coefficients[i] - coefficients[8 + i];
            int c = Mul2(coefficients[4 + i]) - Mul1(coefficients[12 + i]);
            int d = Mul1(coefficients[4 + i]) + Mul2(coefficients[12 + i]);
            t[4 * i] = a + d;
            t[4 * i + 1] = bb + c;
            t[4 * i + 2] = bb - c;
            t[4 * i + 3] = a - d;
        }
        for (int i = 0; i < 4; i++) // rows
        {
            int dc = t[i] + 4;
            int a = dc + t[8 + i];
            int bb = dc - t[8 + i];
            int c = Mul2(t[4 + i]) - Mul1(t[12 + i]);
            int d = Mul1(t[4 + i]) + Mul2(t[12 + i]);
            int row = at + i * Vp8Intra.Stride;
            b[row] = Vp8Intra.Clip(b[row] + ((a + d) >> 3));
            b[row + 1] = Vp8Intra.Clip(b[row + 1] + ((bb + c) >> 3));
            b[row + 2] = Vp8Intra.Clip(b[row + 2] + ((bb - c) >> 3));
            b[row + 3] = Vp8Intra.Clip(b[row + 3] + ((a - d) >> 3));
        }
    }

    /// <summary>The inverse Walsh-Hadamard transform of a 16x16 block's second-order coefficients: each result is
    /// the DC (first) coefficient of one of the 16 luma blocks, which lie 16 apart in <paramref name="blocks"/>.</summary>
    public static void InverseWalshHadamard(ReadOnlySpan<short> input, Span<short> blocks)
    {
        Span<int> t = stackalloc int[16];
        for (int i = 0; i < 4; i++)
        {
            int a0 = input[i] + input[12 + i];
            int a1 = input[4 + i] + input[8 + i];
            int a2 = input[4 + i] - input[8 + i];
            int a3 = input[i] - input[12 + i];
            t[i] = a0 + a1;
            t[8 + i] = a0 - a1;
            t[4 + i] = a3 + a2;
            t[12 + i] = a3 - a2;
        }
        for (int i = 0; i < 4; i++)
        {
            int dc = t[4 * i] + 3;
            int a0 = dc + t[4 * i + 3];
            int a1 = t[4 * i + 1] + t[4 * i + 2];
            int a2 = t[4 * i + 1] - t[4 * i + 2];
            int a3 = dc - t[4 * i + 3];
            int row = 64 * i;
            blocks[row] = (short)((a0 + a1) >> 3);
            blocks[row + 16] = (short)((a3 + a2) >> 3);
            blocks[row + 32] = (short)((a0 - a1) >> 3);
            blocks[row + 48] = (short)((a3 - a2) >> 3);
        }
    }

    // x * sqrt(2) * cos(pi/8) and x * sqrt(2) * sin(pi/8) in 16-bit fixed point.
    private static int Mul1(int a) => ((a * 20091) >> 16) + a;

    private static int Mul2(int a) => (a * 35468) >> 16;
}
