namespace Sd.Kernels.Gemm;

/// <summary>
/// A GEMM microkernel and its register tile (MR rows x NR columns); weights are packed for one NR. Unmanaged, so
/// kernel task contexts can carry it.
/// </summary>
public readonly unsafe struct GemmVariant
{
    private GemmVariant(SimdLevel level, int mr, int nr, delegate*<int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> microkernel,
        delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> fourRows = null,
        delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> eightRows = null)
    {
        Level = level;
        Mr = mr;
        Nr = nr;
        Microkernel = microkernel;
        FourRows = fourRows;
        EightRows = eightRows;
    }

    /// <summary>The instruction set the microkernel needs.</summary>
    public SimdLevel Level { get; }

    /// <summary>E.g. "14x32 Vector512".</summary>
    public string Name => $"{Mr}x{Nr} {Level}";

    public int Mr { get; }

    public int Nr { get; }

    /// <summary>
    /// (kc, packed A, packed B, dst, ldd, accumulate, epilogue, prefetch): dst[Mr x Nr] (=|+=) A B (+ epilogue), with
    /// the next B micro-panel at prefetch (null: none) requested into L2 on the way.
    /// </summary>
    public delegate*<int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> Microkernel { get; }

    /// <summary>
    /// (rows, kc, A micro-panel from its first row, B, dst, ldd, accumulate, epilogue, prefetch): the first rows (at
    /// most 4) of an MR-row A micro-panel, stored straight to C; null where the variant has none (its short tiles go
    /// through a scratch tile).
    /// </summary>
    public delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> FourRows { get; }

    /// <summary>As <see cref="FourRows"/>, at most 8 rows.</summary>
    public delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> EightRows { get; }

    public static GemmVariant Vector512 { get; } =
        new(SimdLevel.Vector512, GemmMicrokernels.Mr512, GemmMicrokernels.Nr512, &GemmMicrokernels.Kernel_14x32_Vector512,
            &GemmMicrokernels.Kernel_x32_Vector512<FourRows>, &GemmMicrokernels.Kernel_x32_Vector512<EightRows>);

    public static GemmVariant Vector256 { get; } =
        new(SimdLevel.Vector256, GemmMicrokernels.Mr256, GemmMicrokernels.Nr256, &GemmMicrokernels.Kernel_6x16_Vector256);

    public static GemmVariant Scalar { get; } =
        new(SimdLevel.Scalar, GemmMicrokernels.MrScalar, GemmMicrokernels.NrScalar, &GemmMicrokernels.Kernel_4x16_Scalar);

    public override string ToString() => Name;
}
