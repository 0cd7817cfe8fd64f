using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Sd.Kernels.Diagnostics;

/// <summary>The kernel families a profile reports (sd bench --profile).</summary>
public enum KernelKind
{
    Conv3x3,
    ConvOther,
    Gemm,
    Attention,
    Norm,
    Elementwise,
}

/// <summary>
/// Wall time per <see cref="KernelKind"/>, and per <see cref="KernelShape"/> for the kernels that name theirs,
/// measured at the kernels' public entry points while <see cref="Enabled"/>. Only the outermost entry point is timed
/// (an implicit-GEMM convolution is a convolution, not also a GEMM); time outside every kernel is the caller's
/// "other". The state is per thread: a profile sees the kernels called from the thread that enabled it (each kernel
/// parallelizes internally), so kernels that other threads run at the same time neither count nor disturb it.
/// Costs two timestamps per kernel call and a dictionary update per shaped one, no allocation after a shape's first
/// call; nothing but a thread-static read when disabled.
/// </summary>
public static class KernelProfiler
{
    [ThreadStatic]
    private static bool t_enabled;

    [ThreadStatic]
    private static long[]? t_ticks;

    [ThreadStatic]
    private static Dictionary<KernelShape, KernelShapeTotals>? t_shapes;

    [ThreadStatic]
    private static int t_depth;

    /// <summary>Whether kernels called from this thread are timed.</summary>
    public static bool Enabled
    {
        get => t_enabled;
        set => t_enabled = value;
    }

    /// <summary>Clears this thread's totals.</summary>
    public static void Reset()
    {
        if (t_ticks != null)
        {
            Array.Clear(t_ticks);
        }
        t_shapes?.Clear();
        t_depth = 0;
    }

    /// <summary>This thread's time in kernels of <paramref name="kind"/> since the last <see cref="Reset"/>.</summary>
    public static TimeSpan Total(KernelKind kind) => t_ticks == null ? TimeSpan.Zero : Stopwatch.GetElapsedTime(0, t_ticks[(int)kind]);

    /// <summary>This thread's per-shape totals since the last <see cref="Reset"/>, longest time first.</summary>
    public static List<KernelShapeTotals> ShapesByTime()
    {
        var list = t_shapes == null ? new List<KernelShapeTotals>() : new List<KernelShapeTotals>(t_shapes.Values);
        list.Sort((a, b) => b.Time.CompareTo(a.Time));
        return list;
    }

    /// <summary>Times the enclosing kernel call: <c>using var _ = KernelProfiler.Measure(kind);</c></summary>
    public static Scope Measure(KernelKind kind) => Measure(kind, default);

    /// <summary>
    /// Times the enclosing kernel call under its kind and <paramref name="shape"/>, whose FLOPs are what
    /// <see cref="FlopCounter"/> counts during the call (when it is enabled).
    /// </summary>
    public static Scope Measure(KernelKind kind, in KernelShape shape)
    {
        if (!t_enabled)
        {
            return default;
        }
        if (t_depth++ != 0)
        {
            return new Scope(kind, -1, default, 0);
        }
        return new Scope(kind, Stopwatch.GetTimestamp(), shape, FlopCounter.Total);
    }

    private static void Add(KernelKind kind, long ticks, in KernelShape shape, long flops)
    {
        t_ticks ??= new long[Enum.GetValues<KernelKind>().Length];
        t_ticks[(int)kind] += ticks;
        if (shape.Format == null)
        {
            return;
        }
        t_shapes ??= new Dictionary<KernelShape, KernelShapeTotals>();
        ref KernelShapeTotals totals = ref CollectionsMarshal.GetValueRefOrAddDefault(t_shapes, shape, out _);
        totals = new KernelShapeTotals(shape, kind, totals.Time + Stopwatch.GetElapsedTime(0, ticks), totals.Calls + 1, totals.Flops + flops);
    }

    /// <summary>One timed call; a struct, so profiling allocates nothing.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly KernelKind _kind;
        private readonly long _start; // 0: profiling was off; -1: nested in another kernel
        private readonly KernelShape _shape;
        private readonly long _flops;

        internal Scope(KernelKind kind, long start, in KernelShape shape, long flops)
        {
            _kind = kind;
            _start = start;
            _shape = shape;
            _flops = flops;
        }

        public void Dispose()
        {
            if (_start == 0)
            {
                return;
            }
            t_depth--;
            if (_start > 0)
            {
                Add(_kind, Stopwatch.GetTimestamp() - _start, _shape, FlopCounter.Total - _flops);
            }
        }
    }
}
