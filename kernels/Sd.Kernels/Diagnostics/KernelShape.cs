using System.Globalization;

namespace Sd.Kernels.Diagnostics;

/// <summary>
/// A kernel call's problem shape for the per-shape profile: a composite format string naming the kernel and up
/// to seven dimensions, e.g. <c>new KernelShape("GEMM {0}x{1}x{2}", m, n, k)</c>. A value type of a constant string
/// and ints, so a profiled call allocates nothing; the text is formatted only for the report.
/// </summary>
public readonly record struct KernelShape(string Format, int D0, int D1 = 0, int D2 = 0, int D3 = 0, int D4 = 0, int D5 = 0, int D6 = 0)
{
    public override string ToString() => string.Format(CultureInfo.InvariantCulture, Format, D0, D1, D2, D3, D4, D5, D6);
}

/// <summary>What the profile summed for one <see cref="KernelShape"/>: its kind, wall time, calls and counted FLOPs.</summary>
public readonly record struct KernelShapeTotals(KernelShape Shape, KernelKind Kind, TimeSpan Time, int Calls, long Flops);
