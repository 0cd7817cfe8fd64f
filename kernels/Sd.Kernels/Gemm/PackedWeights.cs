using System.Runtime.InteropServices;
using Sd.Kernels.Convert;
using Sd.Kernels.Memory;

namespace Sd.Kernels.Gemm;

/// <summary>
/// A weight matrix W [N, K] (PyTorch Linear / 1x1-conv layout: N outputs, K inputs) packed once, at load, for
/// C = A W^T: columns of C are grouped into panels of <see cref="PanelWidth"/> (the microkernel's NR), and each panel
/// stores K rows of NR floats contiguously (k-major), zero-padded past N. The microkernel then streams one panel
/// with aligned vector loads. F16/BF16 weights are widened while packing, so compute is always float32.
/// </summary>
public sealed unsafe class PackedWeights : IDisposable
{
    private float* _data;

    private PackedWeights(int n, int k, int panelWidth)
    {
        N = n;
        K = k;
        PanelWidth = panelWidth;
        Panels = (n + panelWidth - 1) / panelWidth;
        nuint bytes = (nuint)((long)Panels * panelWidth * Math.Max(k, 1) * sizeof(float));
        _data = (float*)AlignedMemory.Allocate(bytes, zero: false);
        // Every valid column is written by the packer; only the last panel's padding columns must read as zero.
        if (n % panelWidth != 0)
        {
            NativeMemory.Clear(Panel(Panels - 1), (nuint)((long)panelWidth * k * sizeof(float)));
        }
    }

    public int N { get; }

    public int K { get; }

    /// <summary>Columns per panel (NR of the microkernel this was packed for).</summary>
    public int PanelWidth { get; }

    public int Panels { get; }

    public float* Data => _data != null ? _data : throw new ObjectDisposedException(nameof(PackedWeights));

    /// <summary>Panel p: K rows of <see cref="PanelWidth"/> floats.</summary>
    public float* Panel(int p) => Data + (nint)p * PanelWidth * K;

    /// <summary>
    /// A matrix in packed layout for callers that write every valid column themselves (Winograd weights); the padding
    /// columns of the last panel are zero.
    /// </summary>
    public static PackedWeights CreateForFill(int n, int k, int panelWidth)
    {
        Validate(n, k, k, panelWidth);
        return new PackedWeights(n, k, panelWidth);
    }

    /// <summary>Packs float32 weights W [N, K] with row stride <paramref name="ldw"/>.</summary>
    public static PackedWeights Pack(float* w, int n, int k, int ldw) => Pack(w, n, k, ldw, GemmKernels.PanelWidth);

    public static PackedWeights Pack(float* w, int n, int k, int ldw, int panelWidth)
    {
        Validate(n, k, ldw, panelWidth);
        var packed = new PackedWeights(n, k, panelWidth);
        packed.Fill(w, ldw, 1, 0);
        return packed;
    }

    /// <summary>Packs 16-bit weights (F16 or BF16 bit patterns) W [N, K], widening each row exactly.</summary>
    public static PackedWeights Pack(ushort* w, int n, int k, int ldw, bool bfloat16, int panelWidth)
    {
        Validate(n, k, ldw, panelWidth);
        float* widened = (float*)AlignedMemory.Allocate((nuint)n * (nuint)k * sizeof(float), zero: false);
        try
        {
            for (int j = 0; j < n; j++)
            {
                var source = new ReadOnlySpan<ushort>(w + (nint)j * ldw, k);
                var target = new Span<float>(widened + (nint)j * k, k);
                if (bfloat16)
                {
                    Widen.BF16ToF32(source, target);
                }
                else
                {
                    Widen.F16ToF32(source, target);
                }
            }
            return Pack(widened, n, k, k, panelWidth);
        }
        finally
        {
            AlignedMemory.Free(widened);
        }
    }

    /// <summary>
    /// Fills the panels from a source where W[j, k] is at <c>source[j * rowStride + map(k)]</c>, with
    /// map(k) = (k % groupSize) * groupStride + k / groupSize when <paramref name="groupSize"/> > 0 (a convolution's
    /// (tap, channel) order) and k otherwise. Blocks of 256 k: each row is read in a short sequential run while the
    /// 32 KiB block of the panel being written stays in L1, so even 100 MB matrices pack at memory speed (reading 32
    /// rows a few bytes at a time instead thrashes the TLB).
    /// </summary>
    internal void Fill(float* source, nint rowStride, int groupStride, int groupSize)
    {
        const int KBlock = 256;
        float* data = Data;
        for (int p = 0; p < Panels; p++)
        {
            int j0 = p * PanelWidth;
            int columns = Math.Min(PanelWidth, N - j0);
            float* panel = data + (nint)p * PanelWidth * K;
            for (int k0 = 0; k0 < K; k0 += KBlock)
            {
                int k1 = Math.Min(K, k0 + KBlock);
                // map(k0) split once; inside the block the (group, index) pair advances without a division.
                int group0 = groupSize > 0 ? k0 % groupSize : 0;
                int index0 = groupSize > 0 ? k0 / groupSize : 0;
                for (int c = 0; c < columns; c++)
                {
                    float* row = source + (j0 + c) * rowStride;
                    float* dst = panel + c;
                    if (groupSize == 0)
                    {
                        for (int kk = k0; kk < k1; kk++)
                        {
                            dst[(nint)kk * PanelWidth] = row[kk];
                        }
                        continue;
                    }
                    int group = group0, index = index0;
                    for (int kk = k0; kk < k1; kk++)
                    {
                        dst[(nint)kk * PanelWidth] = row[(nint)group * groupStride + index];
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

    /// <summary>
    /// Packs conv weights [N, C, taps] (PyTorch [Cout, Cin, kh, kw]) as W [N, taps * C] in (tap, channel) order.
    /// </summary>
    public static PackedWeights PackConvolution(float* weights, int n, int channels, int taps, int panelWidth)
    {
        Validate(n, taps * channels, taps * channels, panelWidth);
        var packed = new PackedWeights(n, taps * channels, panelWidth);
        packed.Fill(weights, (nint)channels * taps, taps, channels);
        return packed;
    }

    private static void Validate(int n, int k, int ldw, int panelWidth)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ldw, k);
        ArgumentOutOfRangeException.ThrowIfLessThan(panelWidth, 1);
    }

    public long SizeInBytes => (long)Panels * PanelWidth * K * sizeof(float);

    public void Dispose()
    {
        if (_data != null)
        {
            AlignedMemory.Free(_data);
            _data = null;
        }
    }
}
