using Sd.Kernels.Attention;
using Sd.Kernels.Convolution;
using Sd.Kernels.Diagnostics;
using Sd.Kernels.Gemm;

namespace Sd.Kernels.Tests;

/// <summary>
/// The profile behind <c>sd bench --profile</c>: time per kind and per shape, FLOPs per shape, only the outermost
/// kernel of a nested call, nothing while disabled, and only the kernels of the thread that enabled it.
/// </summary>
public sealed unsafe class KernelProfilerTests : IDisposable
{
    public KernelProfilerTests() => Clear();

    public void Dispose() => Clear();

    private static void Clear()
    {
        KernelProfiler.Enabled = false;
        FlopCounter.Enabled = false;
        KernelProfiler.Reset();
        FlopCounter.Reset();
    }

    private static void Enable()
    {
        KernelProfiler.Enabled = true;
        FlopCounter.Enabled = true;
    }

    /// <summary>C[m, n] = A[m, k] W^T on the selected variant, with throwaway values.</summary>
    private static void Gemm(int m, int n, int k)
    {
        var a = new float[m * k];
        var w = new float[n * k];
        var c = new float[m * n];
        Array.Fill(a, 0.5f);
        Array.Fill(w, 0.25f);
        fixed (float* pa = a, pw = w, pc = c)
        {
            using PackedWeights packed = PackedWeights.Pack(pw, n, k, k);
            GemmKernels.Multiply(m, pa, k, packed, pc, n);
        }
        Assert.Equal(0.125f * k, c[^1]);
    }

    private static KernelShapeTotals Find(List<KernelShapeTotals> shapes, string text)
    {
        foreach (KernelShapeTotals totals in shapes)
        {
            if (totals.Shape.ToString() == text)
            {
                return totals;
            }
        }
        throw new Xunit.Sdk.XunitException($"no shape '{text}' in: {string.Join(", ", shapes)}");
    }

    [Fact]
    public void Sums_each_shape_over_its_calls_with_the_counted_flops()
    {
        Enable();
        Gemm(37, 48, 20);
        Gemm(37, 48, 20);
        Gemm(5, 48, 20);
        var q = new float[2 * 3 * 16];
        var o = new float[q.Length];
        fixed (float* pq = q, po = o)
        {
            AttentionKernels.Run(new AttentionProblem(pq, 16, pq, 16, pq, 16, po, 16, 2, 2, 3, 3, 8));
        }

        List<KernelShapeTotals> shapes = KernelProfiler.ShapesByTime();
        Assert.Equal(3, shapes.Count);
        KernelShapeTotals twice = Find(shapes, "GEMM 37x48x20");
        Assert.Equal(KernelKind.Gemm, twice.Kind);
        Assert.Equal(2, twice.Calls);
        Assert.Equal(2 * 2L * 37 * 48 * 20, twice.Flops);
        Assert.True(twice.Time > TimeSpan.Zero);
        Assert.Equal(1, Find(shapes, "GEMM 5x48x20").Calls);
        KernelShapeTotals attention = Find(shapes, "attention 2x2 heads, 3 queries x 3 keys, head dim 8");
        Assert.Equal(KernelKind.Attention, attention.Kind);
        Assert.Equal(4L * 2 * 2 * 3 * 3 * 8, attention.Flops);
        for (int i = 1; i < shapes.Count; i++)
        {
            Assert.True(shapes[i - 1].Time >= shapes[i].Time, "longest first");
        }
        Assert.True(KernelProfiler.Total(KernelKind.Gemm) > TimeSpan.Zero);
        Assert.True(KernelProfiler.Total(KernelKind.Attention) > TimeSpan.Zero);
        Assert.Equal(TimeSpan.Zero, KernelProfiler.Total(KernelKind.Conv3x3));

        KernelProfiler.Reset();
        Assert.Empty(KernelProfiler.ShapesByTime());
        Assert.Equal(TimeSpan.Zero, KernelProfiler.Total(KernelKind.Gemm));
    }

    [Fact]
    public void A_convolution_that_runs_a_gemm_counts_once_as_the_convolution()
    {
        var shape = new ConvShape(1, 6, 5, 4, 8, StrideH: 2, StrideW: 2);
        var x = new float[shape.Batch * shape.Height * shape.Width * shape.InChannels];
        var w = new float[shape.OutChannels * shape.PatchSize];
        var y = new float[shape.Batch * shape.OutHeight * shape.OutWidth * shape.OutChannels];
        Enable();
        fixed (float* px = x, pw = w, py = y)
        {
            using PackedWeights packed = ImplicitGemmConv.PackWeights(pw, shape.OutChannels, shape.InChannels, 3, 3, GemmKernels.Selected.Nr);
            ImplicitGemmConv.Run(GemmKernels.Selected, shape, px, packed, null, null, 0, py, shape.OutChannels);
        }

        KernelShapeTotals conv = Assert.Single(KernelProfiler.ShapesByTime());
        Assert.Equal("conv3x3 stride 2 implicit GEMM 1x6x5, 4 to 8 channels", conv.Shape.ToString());
        Assert.Equal(KernelKind.ConvOther, conv.Kind);
        Assert.Equal(1, conv.Calls);
        Assert.Equal(TimeSpan.Zero, KernelProfiler.Total(KernelKind.Gemm));
    }

    [Fact]
    public void Records_nothing_while_disabled()
    {
        Gemm(20, 40, 10);
        Assert.Empty(KernelProfiler.ShapesByTime());
        Assert.Equal(TimeSpan.Zero, KernelProfiler.Total(KernelKind.Gemm));
        Assert.Equal(0, FlopCounter.Total);
    }

    [Fact]
    public void Sees_only_the_kernels_of_the_thread_that_enabled_it()
    {
        Enable();
        var other = new Thread(() =>
        {
            Assert.False(KernelProfiler.Enabled);
            Gemm(9, 40, 10);
        });
        other.Start();
        other.Join();
        Assert.Empty(KernelProfiler.ShapesByTime());
        Assert.Equal(0, FlopCounter.Total);

        Gemm(9, 40, 10);
        Assert.Equal(1, Find(KernelProfiler.ShapesByTime(), "GEMM 9x40x10").Calls);
        Assert.Equal(2L * 9 * 40 * 10, FlopCounter.Total);
    }
}
