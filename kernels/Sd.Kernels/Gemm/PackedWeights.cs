using System.Runtime.InteropServices;
using Sd.Kernels.Convert;

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
        _data = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(_data, bytes);
    }

    public int N { get; }

    public int K { get; }

    /// <summary>Columns per panel (NR of the microkernel this was packed for).</summary>
    public int PanelWidth { get; }

    public int Panels { get; }

    public float* Data => _data != null ? _data : throw new ObjectDisposedException(nameof(PackedWeights));

    /// <summary>Panel p: K rows of <see cref="PanelWidth"/> floats.</summary>
    public float* Panel(int p) => Data + (nint)p * PanelWidth * K;

    /// <summary>A zero matrix in packed layout, filled through <see cref="Element"/> (transformed weights).</summary>
    public static PackedWeights CreateZero(int n, int k, int panelWidth)
    {
        Validate(n, k, k, panelWidth);
        return new PackedWeights(n, k, panelWidth);
    }

    /// <summary>Where W[n, k] lives in the packed layout.</summary>
    public float* Element(int n, int k) => Panel(n / PanelWidth) + (nint)k * PanelWidth + n % PanelWidth;

    /// <summary>Packs float32 weights W [N, K] with row stride <paramref name="ldw"/>.</summary>
    public static PackedWeights Pack(float* w, int n, int k, int ldw) => Pack(w, n, k, ldw, GemmKernels.PanelWidth);

    public static PackedWeights Pack(float* w, int n, int k, int ldw, int panelWidth)
    {
        Validate(n, k, ldw, panelWidth);
        var packed = new PackedWeights(n, k, panelWidth);
        for (int j = 0; j < n; j++)
        {
            packed.SetColumn(j, w + (nint)j * ldw);
        }
        return packed;
    }

    /// <summary>Packs 16-bit weights (F16 or BF16 bit patterns) W [N, K], widening each row exactly.</summary>
    public static PackedWeights Pack(ushort* w, int n, int k, int ldw, bool bfloat16, int panelWidth)
    {
        Validate(n, k, ldw, panelWidth);
        float* row = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(k, 1) * sizeof(float), 64);
        try
        {
            var packed = new PackedWeights(n, k, panelWidth);
            for (int j = 0; j < n; j++)
            {
                var source = new ReadOnlySpan<ushort>(w + (nint)j * ldw, k);
                var target = new Span<float>(row, k);
                if (bfloat16)
                {
                    Widen.BF16ToF32(source, target);
                }
                else
                {
                    Widen.F16ToF32(source, target);
                }
                packed.SetColumn(j, row);
            }
            return packed;
        }
        finally
        {
            NativeMemory.AlignedFree(row);
        }
    }

    /// <summary>Scatters weight row j (K values) into column j of its panel.</summary>
    private void SetColumn(int j, float* row)
    {
        float* panel = Panel(j / PanelWidth) + j % PanelWidth;
        for (int kk = 0; kk < K; kk++)
        {
            panel[(nint)kk * PanelWidth] = row[kk];
        }
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
            NativeMemory.AlignedFree(_data);
            _data = null;
        }
    }
}
