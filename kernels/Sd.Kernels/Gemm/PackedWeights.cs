using System.Runtime.InteropServices;
using Sd.Kernels.Memory;

namespace Sd.Kernels.Gemm;

/// <summary>
/// A weight matrix W [N, K] (PyTorch Linear / 1x1-conv layout: N outputs, K inputs) packed once, at load, for
/// C = A W^T: columns of C are grouped into panels of <see cref="PanelWidth"/> (the microkernel's NR), and each panel
/// stores K rows of NR values contiguously (k-major), zero-padded past N. The microkernel then streams one panel
/// with aligned vector loads. F16/BF16 weights keep their 16-bit <see cref="Format"/> (half the memory); the GEMM
/// widens one Kc x NR micro-panel at a time, exactly, so compute is always float32.
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
    }

    /// <summary>
    /// Fills panels [p0, p1) from a source where W[j, k] is at <c>source[j * rowStride + map(k)]</c>, with
    /// map(k) = (k % groupSize) * groupStride + k / groupSize when groupSize > 0 (a convolution's (tap, channel)
    /// order) and k otherwise. Blocks of 256 k: each row is read in a short sequential run while the block of the
    /// panel being written stays in L1, so even 100 MB matrices pack at memory speed (reading 32 rows a few bytes at
    /// a time instead thrashes the TLB).
    /// </summary>
    private static void FillPanels<T>(FillJob* job, int p0, int p1) where T : unmanaged
    {
        const int KBlock = 256;
        T* source = (T*)job->Source;
        int panelWidth = job->Weights.PanelWidth, k = job->Weights.K, groupSize = job->GroupSize, groupStride = job->GroupStride;
        nint rowStride = job->RowStride;
        for (int p = p0; p < p1; p++)
        {
            int j0 = p * panelWidth;
            int columns = Math.Min(panelWidth, job->Weights.N - j0);
            T* panel = (T*)job->Weights.Panel(p);
            for (int k0 = 0; k0 < k; k0 += KBlock)
            {
                int k1 = Math.Min(k, k0 + KBlock);
                // map(k0) split once; inside the block the (group, index) pair advances without a division.
                int group0 = groupSize > 0 ? k0 % groupSize : 0;
                int index0 = groupSize > 0 ? k0 / groupSize : 0;
                for (int c = 0; c < columns; c++)
                {
                    T* row = source + (j0 + c) * rowStride;
                    T* dst = panel + c;
                    if (groupSize == 0)
                    {
                        for (int kk = k0; kk < k1; kk++)
                        {
                            dst[(nint)kk * panelWidth] = row[kk];
                        }
                        continue;
                    }
                    int group = group0, index = index0;
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
