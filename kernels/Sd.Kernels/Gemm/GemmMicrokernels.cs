using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Gemm;

/// <summary>
/// Register-blocked GEMM microkernels: dst[MR x NR] (=|+=) A_panel * B_panel over kc. A_panel holds MR rows in the
/// order of an <see cref="IPanelLayout"/> (k-major, MR floats per k, or in groups of 16 channels), B_panel NR floats
/// per k (see <see cref="PackedWeights"/>). Each k step broadcasts MR A values and does MR x (NR/lanes) FMAs into
/// accumulators that never leave registers:
/// 14x32 on AVX-512 uses 28 of 32 zmm registers (+2 B vectors, +1 broadcast); 6x16 on AVX2 uses 12 of 16 ymm.
/// An optional <see cref="TileEpilogue"/> adds a bias row and a residual tile in the same store, after the partial
/// sum from C: a separate pass over the C tile cost 3-6% (bias) and 5-13% (bias + residual) of a projection GEMM.
/// A non-null <c>prefetch</c> names the next B micro-panel (kc x NR floats): the k loop requests one k row of it into
/// L2 per step (the scalar kernel ignores it), so a product that streams its weights from memory, where each B
/// micro-panel serves only a few A micro-panels, no longer waits for each panel's first lines.
/// </summary>
public static unsafe class GemmMicrokernels
{
    public const int Mr512 = 14;
    public const int Nr512 = 32;
    public const int Mr256 = 6;
    public const int Nr256 = 16;
    public const int MrScalar = 4;
    public const int NrScalar = 16;

    /// <summary>The full 14x32 tile: <see cref="Kernel_x32_Vector512{TRows, TLayout}"/> at 14 rows.</summary>
    public static void Kernel_14x32_Vector512<TLayout>(int kc, float* a, float* b, float* dst, nint ldd, bool accumulate, TileEpilogue* epilogue, float* prefetch)
        where TLayout : struct, IPanelLayout =>
        Kernel_x32_Vector512<FourteenRows, TLayout>(Mr512, kc, a, b, dst, ldd, accumulate, epilogue, prefetch);

    /// <summary>
    /// The first <paramref name="rows"/> (at most TRows.Count: 4, 8 or 14) rows of a 14-row A micro-panel times a
    /// 32-column B panel, stored straight to C. The 4- and 8-row instances serve the last micro-panel of an M that is
    /// not a multiple of 14 (M = 32 Winograd tiles at 16x16 latents is 14 + 14 + 4), which then costs its own rows
    /// instead of a whole 14-row call into a scratch tile and a scalar merge. The JIT drops the rows a count does not
    /// use: 14 rows keep 28 accumulators in zmm registers, 8 rows 16, 4 rows 8 (as many as two FMA pipes need in
    /// flight).
    /// </summary>
    [SkipLocalsInit]
    public static void Kernel_x32_Vector512<TRows, TLayout>(int rows, int kc, float* a, float* b, float* dst, nint ldd, bool accumulate, TileEpilogue* epilogue, float* prefetch)
        where TRows : struct, IRowCount
        where TLayout : struct, IPanelLayout
    {
        if (epilogue != null && epilogue->Residual != null)
        {
            PrefetchRows(epilogue->Residual, epilogue->Ldr, rows);
        }
        if (accumulate)
        {
            // A later K block adds to C, which for a wide product is not in L1 or even L2 any more (one 112-row block
            // of a 5120-wide product is 2.3 MB of C): one thread, 2048x5120x640 in 256-deep blocks, 180 -> 195 GFLOP/s.
            PrefetchRows(dst, ldd, rows);
        }
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default;
        Vector512<float> c90 = default, c91 = default, cA0 = default, cA1 = default, cB0 = default, cB1 = default;
        Vector512<float> cC0 = default, cC1 = default, cD0 = default, cD1 = default;
        for (int k0 = 0; k0 < kc; k0 += ChannelGroupPanel.Group)
        {
            // Groups of 16 k, so a grouped panel's 16 values per row are constant offsets (k-major panels step as one).
            int steps = Math.Min(ChannelGroupPanel.Group, kc - k0);
            if (TLayout.RowStride > 1)
            {
                PrefetchGroup(a + GroupsAhead * Mr512 * ChannelGroupPanel.Group, rows);
            }
            for (int k = 0; k < steps; k++)
            {
                Vector512<float> b0 = Vector512.LoadAligned(b);
                Vector512<float> b1 = Vector512.LoadAligned(b + 16);
                if (prefetch != null)
                {
                    Sse.Prefetch1(prefetch);
                    Sse.Prefetch1(prefetch + 16);
                    prefetch += Nr512;
                }
                Vector512<float> x;
                x = Vector512.Create(a[0 * TLayout.RowStride]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
                x = Vector512.Create(a[1 * TLayout.RowStride]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
                x = Vector512.Create(a[2 * TLayout.RowStride]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
                x = Vector512.Create(a[3 * TLayout.RowStride]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
                if (TRows.Count > 4)
                {
                    x = Vector512.Create(a[4 * TLayout.RowStride]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
                    x = Vector512.Create(a[5 * TLayout.RowStride]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
                    x = Vector512.Create(a[6 * TLayout.RowStride]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
                    x = Vector512.Create(a[7 * TLayout.RowStride]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
                }
                if (TRows.Count > 8)
                {
                    x = Vector512.Create(a[8 * TLayout.RowStride]); c80 = Vector512.FusedMultiplyAdd(x, b0, c80); c81 = Vector512.FusedMultiplyAdd(x, b1, c81);
                    x = Vector512.Create(a[9 * TLayout.RowStride]); c90 = Vector512.FusedMultiplyAdd(x, b0, c90); c91 = Vector512.FusedMultiplyAdd(x, b1, c91);
                    x = Vector512.Create(a[10 * TLayout.RowStride]); cA0 = Vector512.FusedMultiplyAdd(x, b0, cA0); cA1 = Vector512.FusedMultiplyAdd(x, b1, cA1);
                    x = Vector512.Create(a[11 * TLayout.RowStride]); cB0 = Vector512.FusedMultiplyAdd(x, b0, cB0); cB1 = Vector512.FusedMultiplyAdd(x, b1, cB1);
                    x = Vector512.Create(a[12 * TLayout.RowStride]); cC0 = Vector512.FusedMultiplyAdd(x, b0, cC0); cC1 = Vector512.FusedMultiplyAdd(x, b1, cC1);
                    x = Vector512.Create(a[13 * TLayout.RowStride]); cD0 = Vector512.FusedMultiplyAdd(x, b0, cD0); cD1 = Vector512.FusedMultiplyAdd(x, b1, cD1);
                }
                a += TLayout.Step(Mr512);
                b += Nr512;
            }
            a += TLayout.GroupJump(Mr512);
        }
        EpilogueOperands<Vector512<float>, F32x16>(epilogue, out bool hasBias, out Vector512<float> bias0, out Vector512<float> bias1, out float* res, out nint ldr);
        StoreRow<Vector512<float>, F32x16>(dst, c00, c01, accumulate, hasBias, bias0, bias1, res);
        if (rows > 1) StoreRow<Vector512<float>, F32x16>(dst + ldd, c10, c11, accumulate, hasBias, bias0, bias1, res + ldr);
        if (rows > 2) StoreRow<Vector512<float>, F32x16>(dst + 2 * ldd, c20, c21, accumulate, hasBias, bias0, bias1, res + 2 * ldr);
        if (rows > 3) StoreRow<Vector512<float>, F32x16>(dst + 3 * ldd, c30, c31, accumulate, hasBias, bias0, bias1, res + 3 * ldr);
        if (rows > 4) StoreRow<Vector512<float>, F32x16>(dst + 4 * ldd, c40, c41, accumulate, hasBias, bias0, bias1, res + 4 * ldr);
        if (rows > 5) StoreRow<Vector512<float>, F32x16>(dst + 5 * ldd, c50, c51, accumulate, hasBias, bias0, bias1, res + 5 * ldr);
        if (rows > 6) StoreRow<Vector512<float>, F32x16>(dst + 6 * ldd, c60, c61, accumulate, hasBias, bias0, bias1, res + 6 * ldr);
        if (rows > 7) StoreRow<Vector512<float>, F32x16>(dst + 7 * ldd, c70, c71, accumulate, hasBias, bias0, bias1, res + 7 * ldr);
        if (rows > 8) StoreRow<Vector512<float>, F32x16>(dst + 8 * ldd, c80, c81, accumulate, hasBias, bias0, bias1, res + 8 * ldr);
        if (rows > 9) StoreRow<Vector512<float>, F32x16>(dst + 9 * ldd, c90, c91, accumulate, hasBias, bias0, bias1, res + 9 * ldr);
        if (rows > 10) StoreRow<Vector512<float>, F32x16>(dst + 10 * ldd, cA0, cA1, accumulate, hasBias, bias0, bias1, res + 10 * ldr);
        if (rows > 11) StoreRow<Vector512<float>, F32x16>(dst + 11 * ldd, cB0, cB1, accumulate, hasBias, bias0, bias1, res + 11 * ldr);
        if (rows > 12) StoreRow<Vector512<float>, F32x16>(dst + 12 * ldd, cC0, cC1, accumulate, hasBias, bias0, bias1, res + 12 * ldr);
        if (rows > 13) StoreRow<Vector512<float>, F32x16>(dst + 13 * ldd, cD0, cD1, accumulate, hasBias, bias0, bias1, res + 13 * ldr);
    }

    /// <summary>
    /// How many 16-channel groups ahead a grouped micro-panel's rows are requested. Grouped panels come from the
    /// Winograd input transform, from L3 when a block's V outgrows L2, and a short panel's rows are 4 or 8 lines of
    /// every 14, which the hardware prefetchers miss: one thread, 2x16x16 streamed 2560 -> 1280 channels (14 + 14 + 4 tiles)
    /// 134-143 ms without, 92-104 with (k-major packed V: 115-120); 1x192x192 192 -> 64 stored 30-31 ms with the
    /// requests for short panels only, 28 with them for all (packed: 34-41).
    /// </summary>
    private const int GroupsAhead = 4;

    /// <summary>Requests one group's line of each of the first <paramref name="rows"/> rows of a grouped micro-panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchGroup(float* group, int rows)
    {
        for (int r = 0; r < rows; r++)
        {
            Sse.Prefetch0(group + r * ChannelGroupPanel.Group);
        }
    }

    /// <summary>
    /// Requests a tile's cache lines (the residual's, or C's when accumulating) before the k loop: they are read only
    /// in the final store, from wherever they were left, and 28 misses in a burst there cost more than the prefetches.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRows(float* rows, nint ld, int count)
    {
        for (int r = 0; r < count; r++, rows += ld)
        {
            Sse.Prefetch0(rows);
            Sse.Prefetch0(rows + 16);
        }
    }

    [SkipLocalsInit]
    public static void Kernel_6x16_Vector256<TLayout>(int kc, float* a, float* b, float* dst, nint ldd, bool accumulate, TileEpilogue* epilogue, float* prefetch)
        where TLayout : struct, IPanelLayout
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int k0 = 0; k0 < kc; k0 += ChannelGroupPanel.Group)
        {
            // Groups of 16 k, so a grouped panel's 16 values per row are constant offsets (k-major panels step as one).
            int steps = Math.Min(ChannelGroupPanel.Group, kc - k0);
            if (TLayout.RowStride > 1)
            {
                PrefetchGroup(a + GroupsAhead * Mr256 * ChannelGroupPanel.Group, Mr256);
            }
            for (int k = 0; k < steps; k++)
            {
                Vector256<float> b0 = Vector256.LoadAligned(b);
                Vector256<float> b1 = Vector256.LoadAligned(b + 8);
                if (prefetch != null)
                {
                    Sse.Prefetch1(prefetch);
                    prefetch += Nr256;
                }
                Vector256<float> x;
                x = Vector256.Create(a[0 * TLayout.RowStride]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                x = Vector256.Create(a[1 * TLayout.RowStride]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                x = Vector256.Create(a[2 * TLayout.RowStride]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                x = Vector256.Create(a[3 * TLayout.RowStride]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
                x = Vector256.Create(a[4 * TLayout.RowStride]); c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
                x = Vector256.Create(a[5 * TLayout.RowStride]); c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
                a += TLayout.Step(Mr256);
                b += Nr256;
            }
            a += TLayout.GroupJump(Mr256);
        }
        EpilogueOperands<Vector256<float>, F32x8>(epilogue, out bool hasBias, out Vector256<float> bias0, out Vector256<float> bias1, out float* res, out nint ldr);
        StoreRow<Vector256<float>, F32x8>(dst, c00, c01, accumulate, hasBias, bias0, bias1, res); dst += ldd; res += ldr;
        StoreRow<Vector256<float>, F32x8>(dst, c10, c11, accumulate, hasBias, bias0, bias1, res); dst += ldd; res += ldr;
        StoreRow<Vector256<float>, F32x8>(dst, c20, c21, accumulate, hasBias, bias0, bias1, res); dst += ldd; res += ldr;
        StoreRow<Vector256<float>, F32x8>(dst, c30, c31, accumulate, hasBias, bias0, bias1, res); dst += ldd; res += ldr;
        StoreRow<Vector256<float>, F32x8>(dst, c40, c41, accumulate, hasBias, bias0, bias1, res); dst += ldd; res += ldr;
        StoreRow<Vector256<float>, F32x8>(dst, c50, c51, accumulate, hasBias, bias0, bias1, res);
    }

    /// <summary>What the final store adds: the tile's bias row (if any) and its residual rows (null, stride 0 if none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EpilogueOperands<TVec, V>(TileEpilogue* epilogue, out bool hasBias, out TVec bias0, out TVec bias1, out float* res, out nint ldr)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        float* bias = epilogue == null ? null : epilogue->Bias;
        hasBias = bias != null;
        bias0 = hasBias ? V.Load(bias) : V.Zero;
        bias1 = hasBias ? V.Load(bias + V.Count) : V.Zero;
        res = epilogue == null ? null : epilogue->Residual;
        ldr = res == null ? 0 : epilogue->Ldr;
    }

    /// <summary>
    /// One accumulator row pair to C: ((partial (+ C)) + bias) + residual, the order of a separate epilogue pass, so
    /// results are bit-identical to one. A null residual row (the tile has none: its stride is then 0) is skipped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TVec, V>(float* dst, TVec v0, TVec v1, bool accumulate, bool hasBias, TVec bias0, TVec bias1, float* res)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        if (accumulate)
        {
            v0 = V.Add(v0, V.Load(dst));
            v1 = V.Add(v1, V.Load(dst + V.Count));
        }
        if (hasBias)
        {
            v0 = V.Add(v0, bias0);
            v1 = V.Add(v1, bias1);
        }
        if (res != null)
        {
            v0 = V.Add(v0, V.Load(res));
            v1 = V.Add(v1, V.Load(res + V.Count));
        }
        V.Store(v0, dst);
        V.Store(v1, dst + V.Count);
    }

    /// <summary>Portable fallback with the same packed layout (MR 4, NR 16).</summary>
    public static void Kernel_4x16_Scalar<TLayout>(int kc, float* a, float* b, float* dst, nint ldd, bool accumulate, TileEpilogue* epilogue, float* prefetch)
        where TLayout : struct, IPanelLayout
    {
        float* acc = stackalloc float[MrScalar * NrScalar];
        new Span<float>(acc, MrScalar * NrScalar).Clear();
        for (int k0 = 0; k0 < kc; k0 += ChannelGroupPanel.Group)
        {
            // Groups of 16 k, so a grouped panel's 16 values per row are constant offsets (k-major panels step as one).
            int steps = Math.Min(ChannelGroupPanel.Group, kc - k0);
            for (int k = 0; k < steps; k++)
            {
                for (int r = 0; r < MrScalar; r++)
                {
                    float x = a[r * TLayout.RowStride];
                    for (int j = 0; j < NrScalar; j++)
                    {
                        acc[r * NrScalar + j] = MathF.FusedMultiplyAdd(x, b[j], acc[r * NrScalar + j]);
                    }
                }
                a += TLayout.Step(MrScalar);
                b += NrScalar;
            }
            a += TLayout.GroupJump(MrScalar);
        }
        float* bias = epilogue == null ? null : epilogue->Bias;
        float* res = epilogue == null ? null : epilogue->Residual;
        for (int r = 0; r < MrScalar; r++)
        {
            for (int j = 0; j < NrScalar; j++)
            {
                float v = accumulate ? acc[r * NrScalar + j] + dst[r * ldd + j] : acc[r * NrScalar + j];
                if (bias != null) v += bias[j];
                if (res != null) v += res[r * epilogue->Ldr + j];
                dst[r * ldd + j] = v;
            }
        }
    }
}

/// <summary>A compile-time row count for <see cref="GemmMicrokernels.Kernel_x32_Vector512{TRows, TLayout}"/> (the JIT drops the rows a count does not use).</summary>
public interface IRowCount
{
    static abstract int Count { get; }
}

public readonly struct FourRows : IRowCount
{
    public static int Count => 4;
}

public readonly struct EightRows : IRowCount
{
    public static int Count => 8;
}

public readonly struct FourteenRows : IRowCount
{
    public static int Count => GemmMicrokernels.Mr512;
}

/// <summary>
/// How an A micro-panel of MR rows orders its values, as a compile-time choice (the JIT folds the strides into each
/// broadcast's address).
/// </summary>
public interface IPanelLayout
{
    /// <summary>Floats between two rows' values at one k.</summary>
    static abstract int RowStride { get; }

    /// <summary>How far an MR-row panel's pointer moves from one k to the next within a group of 16.</summary>
    static abstract int Step(int mr);

    /// <summary>How much further it moves after a group's 16 steps.</summary>
    static abstract int GroupJump(int mr);
}

/// <summary>k-major: MR floats per k, rows adjacent (what the A packers write).</summary>
public readonly struct KMajorPanel : IPanelLayout
{
    public static int RowStride => 1;

    public static int Step(int mr) => mr;

    public static int GroupJump(int mr) => 0;
}

/// <summary>
/// In groups of 16 channels: for each 16 k, row i's 16 values at i x 16, so a panel is [kc / 16][MR][16] (the last
/// group's rows keep 16 slots). A producer that makes one row's 16 channels as a vector (the Winograd input
/// transform, one tile at a time) stores them whole, and the microkernel reads the panel with no packing pass.
/// </summary>
public readonly struct ChannelGroupPanel : IPanelLayout
{
    /// <summary>Channels per group: one AVX-512 vector, a cache line.</summary>
    public const int Group = 16;

    public static int RowStride => Group;

    /// <summary><paramref name="count"/> channels rounded up to whole groups.</summary>
    public static int WholeGroups(int count) => (count + Group - 1) / Group * Group;

    public static int Step(int mr) => 1;

    public static int GroupJump(int mr) => (mr - 1) * Group;
}
