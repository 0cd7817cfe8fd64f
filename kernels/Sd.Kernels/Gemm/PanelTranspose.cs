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

    /// <summary>Columns of zeros that stand in for the missing rows of a short micro-panel.</summary>
    private const int ZeroRowFloats = 2048;

    private static readonly float* ZeroRow = (float*)NativeMemory.AllocZeroed(ZeroRowFloats * sizeof(float));

    /// <summary>
    /// Packs columns [0, count - count % 16) of the first <paramref name="rowCount"/> (at most 14) rows
    /// <paramref name="rows"/>[i] into <paramref name="panel"/>[k * 14 + i], rows from <paramref name="rowCount"/> on
    /// as zeros (a short last micro-panel, such as a Winograd layer's 8 tiles: <paramref name="rows"/> has 14 slots,
    /// and those are pointed at a zero row); returns the number of columns done (the caller packs the rest). A short
    /// panel wider than the zero row is left to the caller.
    /// </summary>
    [SkipLocalsInit] // every lane of the transpose buffer is written before it is read
    public static int Pack14Rows(float** rows, int rowCount, int count, float* panel)
    {
        if (!Avx512F.IsSupported || (rowCount < Rows && count > ZeroRowFloats))
        {
            return 0;
        }
        for (int i = rowCount; i < Rows; i++)
        {
            rows[i] = ZeroRow;
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

    /// <summary>
    /// <see cref="Pack14Rows(float**, int, int, float*)"/> for the first <paramref name="rowCount"/> rows of a
    /// row-major matrix.
    /// </summary>
    public static int Pack14Rows(float* a, nint ld, int rowCount, int count, float* panel)
    {
        float** rows = stackalloc float*[Rows];
        for (int i = 0; i < rowCount; i++)
        {
            rows[i] = a + i * ld;
        }
        return Pack14Rows(rows, rowCount, count, panel);
    }
}
