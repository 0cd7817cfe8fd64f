using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sd.Kernels.Gemm;

/// <summary>
/// The vector body of A packing for the 14-row AVX-512 microkernel: 14 rows x 16 columns of a row-major matrix
/// become 16 k-steps of 14 packed values through an in-register 16x16 transpose (rows 14 and 15 are zero) and 16
/// masked 14-lane stores. About 0.3 shuffles per value instead of one scalar load and strided store each: the packing
/// of A is otherwise a visible share of GEMMs with few output columns (N = 320: 10 column panels to amortize it over).
/// </summary>
internal static unsafe class PanelTranspose
{
    /// <summary>The micro-panel height these packers serve: the AVX-512 microkernel's MR.</summary>
    public const int Rows = GemmMicrokernels.Mr512;

    /// <summary>
    /// Packs columns [0, count - count % 16) of the 14 rows <paramref name="rows"/>[i] into
    /// <paramref name="panel"/>[k * 14 + i]; returns the number of columns done (the caller packs the rest).
    /// </summary>
    public static int Pack14Rows(float** rows, int count, float* panel)
    {
        if (!Avx512F.IsSupported)
        {
            return 0;
        }
        Vector512<float> mask = Vector512.Create(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0).AsSingle();
        Vector512<float>* r = stackalloc Vector512<float>[16];
        Vector512<float>* t = stackalloc Vector512<float>[16];
        int k = 0;
        for (; k <= count - 16; k += 16)
        {
            for (int i = 0; i < 14; i++)
            {
                r[i] = Vector512.Load(rows[i] + k);
            }
            r[14] = Vector512<float>.Zero;
            r[15] = Vector512<float>.Zero;
            Transpose16(r, t);
            float* dst = panel + k * 14;
            for (int j = 0; j < 16; j++)
            {
                Avx512F.MaskStore(dst + j * 14, mask, r[j]);
            }
        }
        return k;
    }

    /// <summary><see cref="Pack14Rows(float**, int, float*)"/> for 14 rows of a row-major matrix.</summary>
    public static int Pack14Rows(float* a, nint ld, int count, float* panel)
    {
        float** rows = stackalloc float*[14];
        for (int i = 0; i < 14; i++)
        {
            rows[i] = a + i * ld;
        }
        return Pack14Rows(rows, count, panel);
    }

    /// <summary>In-place 16x16 transpose of r[0..15] (t: scratch): unpack ps, unpack pd, then two rounds of 128-bit lane shuffles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose16(Vector512<float>* r, Vector512<float>* t)
    {
        for (int i = 0; i < 16; i += 2)
        {
            t[i] = Avx512F.UnpackLow(r[i], r[i + 1]);
            t[i + 1] = Avx512F.UnpackHigh(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4)
        {
            r[i] = Avx512F.UnpackLow(t[i].AsDouble(), t[i + 2].AsDouble()).AsSingle();
            r[i + 1] = Avx512F.UnpackHigh(t[i].AsDouble(), t[i + 2].AsDouble()).AsSingle();
            r[i + 2] = Avx512F.UnpackLow(t[i + 1].AsDouble(), t[i + 3].AsDouble()).AsSingle();
            r[i + 3] = Avx512F.UnpackHigh(t[i + 1].AsDouble(), t[i + 3].AsDouble()).AsSingle();
        }
        for (int h = 0; h < 16; h += 8)
        {
            for (int i = 0; i < 4; i++)
            {
                t[h + i] = Avx512F.Shuffle4x128(r[h + i], r[h + 4 + i], 0x88);
                t[h + 4 + i] = Avx512F.Shuffle4x128(r[h + i], r[h + 4 + i], 0xDD);
            }
        }
        for (int i = 0; i < 8; i++)
        {
            r[i] = Avx512F.Shuffle4x128(t[i], t[i + 8], 0x88);
            r[i + 8] = Avx512F.Shuffle4x128(t[i], t[i + 8], 0xDD);
        }
    }
}
