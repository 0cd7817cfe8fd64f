using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Memory;

namespace Sd.Kernels.Gemm;

/// <summary>
/// A weight matrix W [N, K] (PyTorch Linear / 1x1-conv layout: N outputs, K inputs) packed once, at load, for
/// C = A W^T: columns of C are grouped into panels of <see cref="PanelWidth"/> (the microkernel's NR), and each panel
/// stores K rows of NR values contiguously (k-major), zero-padded past N. The microkernel then streams one panel
/// with aligned vector loads. F16/BF16 weights keep their 16-bit <see cref="Format"/> (half the memory); the GEMM
/// widens one micro-panel (a K block x NR) at a time, exactly, so compute is always float32.
/// </summary>
public sealed unsafe class PackedWeights : IDisposable
{
    private byte* _data;

    private PackedWeights(int n, int k, int panelWidth, WeightFormat format)
    {
        N = n;
        K = k;
        PanelWidth = panelWidth;
        Format = format;
        Panels = (n + panelWidth - 1) / panelWidth;
        _data = (byte*)AlignedMemory.Allocate((nuint)SizeInBytes, zero: false);
        // Every valid column is written by the packer; only the last panel's padding columns must read as zero.
        if (n % panelWidth != 0)
        {
            NativeMemory.Clear(Panel(Panels - 1), (nuint)PanelBytes);
        }
    }

    public int N { get; }

    public int K { get; }

    /// <summary>Columns per panel (NR of the microkernel this was packed for).</summary>
    public int PanelWidth { get; }

    public int Panels { get; }

    public WeightFormat Format { get; }

    private long PanelBytes => (long)PanelWidth * K * Format.ElementBytes();

    public byte* Bytes => _data != null ? _data : throw new ObjectDisposedException(nameof(PackedWeights));

    /// <summary>The panels as floats (F32 format only).</summary>
    public float* Data => Format == WeightFormat.F32
        ? (float*)Bytes
        : throw new InvalidOperationException($"these weights are stored as {Format}, not F32");

    /// <summary>Panel p: K rows of <see cref="PanelWidth"/> values in <see cref="Format"/>.</summary>
    public byte* Panel(int p) => Bytes + p * PanelBytes;

    /// <summary>
    /// An F32 matrix in packed layout for callers that write every valid column themselves (Winograd weights); the
    /// padding columns of the last panel are zero.
    /// </summary>
    public static PackedWeights CreateForFill(int n, int k, int panelWidth)
    {
        Validate(n, k, k, panelWidth);
        return new PackedWeights(n, k, panelWidth, WeightFormat.F32);
    }

    /// <summary>Packs float32 weights W [N, K] with row stride <paramref name="ldw"/>.</summary>
    public static PackedWeights Pack(float* w, int n, int k, int ldw) => Pack(w, n, k, ldw, GemmKernels.PanelWidth);

    public static PackedWeights Pack(float* w, int n, int k, int ldw, int panelWidth) =>
        Pack(w, WeightFormat.F32, n, k, ldw, panelWidth);

    /// <summary>
    /// Packs W [N, K] (row stride <paramref name="ldw"/>) stored as <paramref name="format"/>: float32 values or
    /// F16/BF16 bit patterns, which stay 16-bit.
    /// </summary>
    public static PackedWeights Pack(void* w, WeightFormat format, int n, int k, int ldw, int panelWidth)
    {
        Validate(n, k, ldw, panelWidth);
        var packed = new PackedWeights(n, k, panelWidth, format);
        packed.Fill(w, ldw, 1, 0);
        return packed;
    }

    /// <summary>
    /// Packs conv weights [N, C, taps] (PyTorch [Cout, Cin, kh, kw]) stored as <paramref name="format"/> as
    /// W [N, taps * C] in (tap, channel) order.
    /// </summary>
    public static PackedWeights PackConvolution(void* weights, WeightFormat format, int n, int channels, int taps, int panelWidth)
    {
        Validate(n, taps * channels, taps * channels, panelWidth);
        var packed = new PackedWeights(n, taps * channels, panelWidth, format);
        packed.Fill(weights, (nint)channels * taps, taps, channels);
        return packed;
    }

    private void Fill(void* source, nint rowStride, int groupStride, int groupSize)
    {
        // Packing is the first write to freshly allocated memory, so besides the copy it pays the kernel's page
        // zeroing (in this VM the larger part): spread over the threads (two here), a float32 SD 1.5 UNet loads in
        // 5.5-5.7 s instead of 8.3-10.4 s, an F16 one in 3.2 s instead of 3.5-3.7. Small matrices stay on the
        // calling thread.
        var job = new FillJob
        {
            Weights = new PackedWeightsView(this), Source = source, RowStride = rowStride, GroupStride = groupStride,
            GroupSize = groupSize,
            Tasks = SizeInBytes < ParallelFillBytes ? 1 : Math.Min(Panels, Threading.WorkerPool.Shared.ThreadCount * 4),
        };
        Threading.WorkerPool.Shared.Run(&FillTask, &job, job.Tasks);
        // The GEMM widens F16 panels with a finite-only conversion (4 operations instead of 12).
        if (Format == WeightFormat.F16 && Convert.WidenKernels.HasNonFiniteF16((ushort*)Bytes, (nint)(SizeInBytes / sizeof(ushort))))
        {
            Dispose();
            throw new ArgumentException("F16 weights contain Inf or NaN", nameof(source));
        }
    }

    /// <summary>Packed sizes from which <see cref="Fill(void*, nint, int, int)"/> runs on the worker pool.</summary>
    private const long ParallelFillBytes = 1 << 20;

    /// <summary>What a fill task needs: the panels to write and the source's addressing (see <see cref="FillPanels{T}"/>).</summary>
    private struct FillJob
    {
        public PackedWeightsView Weights;
        public void* Source;
        public nint RowStride;
        public int GroupStride;
        public int GroupSize;
        public int Tasks;
    }

    private static void FillTask(void* state, int index)
    {
        FillJob* job = (FillJob*)state;
        int panels = job->Weights.Panels;
        int p0 = (int)Elementwise.Tiling.Start(index, job->Tasks, panels), p1 = (int)Elementwise.Tiling.Start(index + 1, job->Tasks, panels);
        if (job->Weights.Format == WeightFormat.F32)
        {
            FillPanels<float>(job, p0, p1);
        }
        else
        {
            FillPanels<ushort>(job, p0, p1);
        }
        if (Sse.IsSupported)
        {
            Sse.StoreFence(); // the streaming stores are weakly ordered: drain them before the task reports done
        }
    }

    /// <summary>
    /// Fills panels [p0, p1) from a source where W[j, k] is at <c>source[j * rowStride + map(k)]</c>, with
    /// map(k) = (k % groupSize) * groupStride + k / groupSize when groupSize > 0 (a convolution's (tap, channel)
    /// order) and k otherwise. Whole panels go through <see cref="GatherPanel{T}"/>; the last partial one (and
    /// machines without AVX2) one value at a time, in blocks of 256 k so that each row is read in a short run while
    /// the block of the panel being written stays in L1 (reading 32 rows a few bytes at a time instead thrashes the TLB).
    /// Compiled optimized from the first call: a process packs each matrix once, so tiered compilation would run most of
    /// a first load in unoptimized code (a 1280x1280x3x3 convolution: 15 ms instead of 5 in a fresh process).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FillPanels<T>(FillJob* job, int p0, int p1) where T : unmanaged
    {
        const int KBlock = 256;
        T* source = (T*)job->Source;
        int panelWidth = job->Weights.PanelWidth, k = job->Weights.K;
        nint rowStride = job->RowStride;
        bool gather = Avx2.IsSupported && panelWidth % GatherLanes == 0 && rowStride < int.MaxValue / (4 * panelWidth)
            && ((nint)source & (sizeof(T) - 1)) == 0;
        for (int p = p0; p < p1; p++)
        {
            int j0 = p * panelWidth;
            int columns = Math.Min(panelWidth, job->Weights.N - j0);
            T* panel = (T*)job->Weights.Panel(p);
            if (gather && columns == panelWidth)
            {
                GatherPanel(job, source + j0 * rowStride, panel);
                continue;
            }
            for (int k0 = 0; k0 < k; k0 += KBlock)
            {
                for (int c = 0; c < columns; c++)
                {
                    CopyRow(job, source + (j0 + c) * rowStride, k0, Math.Min(k, k0 + KBlock), panel + c, panelWidth);
                }
            }
        }
    }

    /// <summary>The reference: W[j, k] for k in [k0, k1) of the row at <paramref name="row"/>, one value at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CopyRow<T>(FillJob* job, T* row, int k0, int k1, T* dst, int panelWidth) where T : unmanaged
    {
        int groupSize = job->GroupSize, groupStride = job->GroupStride;
        if (groupSize == 0)
        {
            for (int kk = k0; kk < k1; kk++)
            {
                dst[(nint)kk * panelWidth] = row[kk];
            }
            return;
        }
        // map(k0) split once; the (group, index) pair then advances without a division.
        int group = k0 % groupSize, index = k0 / groupSize;
        for (int kk = k0; kk < k1; kk++)
        {
            dst[(nint)kk * panelWidth] = row[(nint)group * groupStride + index];
            if (++group == groupSize)
            {
                group = 0;
                index++;
            }
        }
    }

    /// <summary>Rows per gather: one AVX2 vector of 32-bit lanes.</summary>
    private const int GatherLanes = 8;

    /// <summary>Channels per block of a convolution's panel: 16 x 9 taps is 576 contiguous bytes of each row.</summary>
    private const int GatherChannelBlock = 16;

    /// <summary>
    /// One whole panel, a k at a time: gathers read W[j0 .. j0 + NR - 1, map(k)], eight rows each, and the panel row
    /// is written whole, with streaming stores when it is a multiple of a cache line (all but 16-bit panels 16 wide), so
    /// the fill neither reads the destination for ownership nor evicts the source. A convolution goes a block of
    /// channels at a time, all taps of each, so the rows are read in contiguous runs (16 x 9 values) and each run
    /// once. 16-bit values are gathered as the aligned 32-bit word holding each (never past the value's own word, so
    /// never into another page) and shifted down. Two threads, fresh process, source and destination memory reused: a
    /// 1280x1280x3x3 float32 convolution packed in 15.5 ms with scalar copies, 5.0-5.3 ms with this (gathers with
    /// ordinary stores: no faster than scalar); a 10240x1280 linear 11 -> 4.2-4.5 ms. Software prefetch of the next
    /// block of each row measured slower. A float32 SD 1.5 UNet loaded again in 1.8-1.9 s instead of 2.4.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GatherPanel<T>(FillJob* job, T* rows, T* panel) where T : unmanaged
    {
        int width = job->Weights.PanelWidth, k = job->Weights.K;
        bool stream = width * sizeof(T) % AlignedMemory.CacheLine == 0;
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * (int)job->RowStride;
        if (job->GroupSize == 0)
        {
            for (int kk = 0; kk < k; kk++)
            {
                GatherRow(rows, lanes, job->RowStride, width, kk, panel + (nint)kk * width, stream);
            }
            return;
        }
        int channels = job->GroupSize, taps = k / channels, stride = job->GroupStride;
        for (int c0 = 0; c0 < channels; c0 += GatherChannelBlock)
        {
            int c1 = Math.Min(channels, c0 + GatherChannelBlock);
            for (int t = 0; t < taps; t++)
            {
                for (int c = c0; c < c1; c++)
                {
                    int kk = t * channels + c;
                    GatherRow(rows, lanes, job->RowStride, width, c * stride + t, panel + (nint)kk * width, stream);
                }
            }
        }
    }

    /// <summary>One panel row: rows[j * rowStride + offset] for j in [0, width), eight at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GatherRow<T>(T* rows, Vector256<int> lanes, nint rowStride, int width, int offset, T* dst, bool stream)
        where T : unmanaged
    {
        for (int j = 0; j < width; j += GatherLanes)
        {
            Vector256<int> index = lanes + Vector256.Create((int)(j * rowStride) + offset);
            if (typeof(T) == typeof(float))
            {
                Vector256<float> values = Avx2.GatherVector256((float*)rows, index, 4);
                if (stream)
                {
                    Avx.StoreAlignedNonTemporal((float*)dst + j, values);
                }
                else
                {
                    values.Store((float*)dst + j);
                }
            }
            else
            {
                // Byte offsets from the 4-byte aligned word below the rows' start.
                Vector256<int> bytes = index * 2 + Vector256.Create((int)((nint)rows & 3));
                Vector256<int> words = Avx2.GatherVector256((int*)((nint)rows & ~3), bytes & Vector256.Create(~3), 1);
                Vector256<uint> shifted = Avx2.ShiftRightLogicalVariable(words.AsUInt32(), ((bytes & Vector256.Create(2)) << 3).AsUInt32());
                Vector256<int> values = (shifted & Vector256.Create(0xFFFFu)).AsInt32();
                Vector128<ushort> narrow = Sse41.PackUnsignedSaturate(values.GetLower(), values.GetUpper());
                if (stream)
                {
                    Sse2.StoreAlignedNonTemporal((ushort*)dst + j, narrow);
                }
                else
                {
                    narrow.Store((ushort*)dst + j);
                }
            }
        }
    }

    private static void Validate(int n, int k, int ldw, int panelWidth)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ldw, k);
        ArgumentOutOfRangeException.ThrowIfLessThan(panelWidth, 1);
    }

    public long SizeInBytes => Panels * PanelBytes;

    public void Dispose()
    {
        if (_data != null)
        {
            AlignedMemory.Free(_data);
            _data = null;
        }
    }
}
