using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Layout;

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
    [SkipLocalsInit] // every lane of the transpose buffer is written before it is read
    public static int Pack14Rows(float** rows, int count, float* panel)
    {
        if (!Avx512F.IsSupported)
        {
            return 0;
        }
        Vector512<float> mask = Vector512.Create(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0).AsSingle();
        Vector512<float>* v = stackalloc Vector512<float>[16];
        float* r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3], r4 = rows[4], r5 = rows[5], r6 = rows[6];
        float* r7 = rows[7], r8 = rows[8], r9 = rows[9], r10 = rows[10], r11 = rows[11], r12 = rows[12], r13 = rows[13];
        int k = 0;
        for (; k <= count - 16; k += 16)
        {
            v[0] = Vector512.Load(r0 + k);
            v[1] = Vector512.Load(r1 + k);
            v[2] = Vector512.Load(r2 + k);
            v[3] = Vector512.Load(r3 + k);
            v[4] = Vector512.Load(r4 + k);
            v[5] = Vector512.Load(r5 + k);
            v[6] = Vector512.Load(r6 + k);
            v[7] = Vector512.Load(r7 + k);
            v[8] = Vector512.Load(r8 + k);
            v[9] = Vector512.Load(r9 + k);
            v[10] = Vector512.Load(r10 + k);
            v[11] = Vector512.Load(r11 + k);
            v[12] = Vector512.Load(r12 + k);
            v[13] = Vector512.Load(r13 + k);
            v[14] = Vector512<float>.Zero;
            v[15] = Vector512<float>.Zero;
            RegisterTranspose.Transpose16x16(v);
            float* dst = panel + k * 14;
            for (int j = 0; j < 16; j++)
            {
                Avx512F.MaskStore(dst + j * 14, mask, v[j]);
            }
        }
        return k;
    }

    /// <summary>Columns of zeros that stand in for the missing rows of a short micro-panel.</summary>
    private const int ZeroRowFloats = 2048;

    private static readonly float* ZeroRow = (float*)NativeMemory.AllocZeroed(ZeroRowFloats * sizeof(float));

    /// <summary>
    /// <see cref="Pack14Rows(float**, int, float*)"/> for the first <paramref name="count"/> rows (at most 14) of a
    /// row-major matrix; rows from <paramref name="count"/> on are packed as zeros (a short last micro-panel, such as
    /// a Winograd layer's 8 tiles), as long as the columns fit <see cref="ZeroRowFloats"/>.
    /// </summary>
    public static int Pack14Rows(float* a, nint ld, int count, int columns, float* panel)
    {
        if (count < Rows && columns > ZeroRowFloats)
        {
            return 0;
        }
        float** rows = stackalloc float*[Rows];
        for (int i = 0; i < Rows; i++)
        {
            rows[i] = i < count ? a + i * ld : ZeroRow;
        }
        return Pack14Rows(rows, columns, panel);
    }
}
