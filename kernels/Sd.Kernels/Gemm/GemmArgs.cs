namespace Sd.Kernels.Gemm;

/// <summary>
/// Packs rows [row0, row0+rows) x columns [k0, k0+kc) of the virtual A matrix into MR-row micro-panels, k-major
/// (MR values per k), zero-padding rows past <c>rows</c> up to a multiple of MR. A plain matrix uses a strided copy;
/// a convolution gathers the im2col patch on the fly (implicit GEMM: the full im2col matrix never exists).
/// Or A is already in micro-panels (<see cref="ChannelGroups"/>), and nothing is packed.
/// </summary>
public unsafe struct APacker
{
    public delegate*<void*, int, int, int, int, int, float*, void> Pack;
    public void* State;

    /// <summary>Non-null: A in <see cref="ChannelGroupPanel"/> micro-panels, rows [r, r + MR) at Grouped + r x GroupedDepth.</summary>
    public float* Grouped;

    /// <summary>The channels each grouped micro-panel holds (K rounded up to a whole group).</summary>
    public int GroupedDepth;

    /// <summary>A whose MR-row micro-panels, <paramref name="depth"/> channels deep, follow each other from <paramref name="panels"/>.</summary>
    public static APacker ChannelGroups(float* panels, int depth) => new() { Grouped = panels, GroupedDepth = depth };
}

/// <summary>One GEMM call: C[M, N] = A[M, K] W[N, K]^T (+ bias[N]) (+ residual[M, N]).</summary>
public unsafe struct GemmArgs
{
    public int M;
    public APacker A;
    public PackedWeightsView W;
    public float* C;
    public int Ldc;
    public float* Bias;

    /// <summary>
    /// Rows that share one bias vector, 0 for all of them: with n > 0 row r adds bias[(r / n) * N + j] (a batch of
    /// images with one bias each, e.g. a ResNet conv bias plus that image's time embedding).
    /// </summary>
    public int BiasRows;

    public float* Residual;
    public int Ldr;

    /// <summary>C already holds values to add to (an in-place residual): the first K block accumulates.</summary>
    public bool AccumulateIntoC;
}

/// <summary>
/// What a microkernel adds in its final store (null: nothing): a bias row for the tile's columns (null: none) and a
/// residual tile (null: none) whose rows are <see cref="Ldr"/> floats apart.
/// </summary>
public unsafe struct TileEpilogue
{
    public float* Bias;
    public float* Residual;
    public nint Ldr;
}

/// <summary>The raw view of <see cref="PackedWeights"/> a kernel task needs (unmanaged, so it can sit in a task context).</summary>
public unsafe struct PackedWeightsView
{
    public byte* Data;
    public WeightFormat Format;
    public int N;
    public int K;
    public int Panels;
    public int PanelWidth;

    public PackedWeightsView(PackedWeights weights)
    {
        Data = weights.Bytes;
        Format = weights.Format;
        N = weights.N;
        K = weights.K;
        Panels = weights.Panels;
        PanelWidth = weights.PanelWidth;
    }

    public byte* Panel(int p) => Data + (nint)p * PanelWidth * K * Format.ElementBytes();
}
