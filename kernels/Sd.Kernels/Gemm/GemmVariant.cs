namespace Sd.Kernels.Gemm;

/// <summary>
/// A GEMM microkernel and its register tile (MR rows x NR columns); weights are packed for one NR. Unmanaged, so
/// kernel task contexts can carry it.
/// </summary>
public readonly unsafe struct GemmVariant
{
    private GemmVariant(SimdLevel level, int mr, int nr, TileKernels kMajor, TileKernels channelGroups)
    {
        Level = level;
        Mr = mr;
        Nr = nr;
        KMajor = kMajor;
        ChannelGroups = channelGroups;
    }

    /// <summary>The instruction set the microkernel needs.</summary>
    public SimdLevel Level { get; }

    /// <summary>E.g. "14x32 Vector512".</summary>
    public string Name => $"{Mr}x{Nr} {Level}";

    public int Mr { get; }

    public int Nr { get; }

    /// <summary>The kernels for k-major A micro-panels (<see cref="KMajorPanel"/>: what the A packers write).</summary>
    public TileKernels KMajor { get; }

    /// <summary>The kernels for A micro-panels in 16-channel groups (<see cref="ChannelGroupPanel"/>: Winograd's V).</summary>
    public TileKernels ChannelGroups { get; }

    public static GemmVariant Vector512 { get; } =
        new(SimdLevel.Vector512, GemmMicrokernels.Mr512, GemmMicrokernels.Nr512, TileKernels.Vector512<KMajorPanel>(), TileKernels.Vector512<ChannelGroupPanel>());

    public static GemmVariant Vector256 { get; } =
        new(SimdLevel.Vector256, GemmMicrokernels.Mr256, GemmMicrokernels.Nr256, TileKernels.Vector256<KMajorPanel>(), TileKernels.Vector256<ChannelGroupPanel>());

    public static GemmVariant Scalar { get; } =
        new(SimdLevel.Scalar, GemmMicrokernels.MrScalar, GemmMicrokernels.NrScalar, TileKernels.Scalar<KMajorPanel>(), TileKernels.Scalar<ChannelGroupPanel>());

    public override string ToString() => Name;
}

/// <summary>A variant's microkernels for one A micro-panel layout.</summary>
public readonly unsafe struct TileKernels
{
    private TileKernels(delegate*<int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> microkernel, int rowStride,
        delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> fourRows = null,
        delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> eightRows = null)
    {
        Microkernel = microkernel;
        RowStride = rowStride;
        FourRows = fourRows;
        EightRows = eightRows;
    }

    /// <summary>
    /// (kc, A micro-panel, packed B, dst, ldd, accumulate, epilogue, prefetch): dst[Mr x Nr] (=|+=) A B (+ epilogue),
    /// with the next B micro-panel at prefetch (null: none) requested into L2 on the way.
    /// </summary>
    public delegate*<int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> Microkernel { get; }

    /// <summary>Floats between two rows of a micro-panel at one k (<see cref="IPanelLayout.RowStride"/>).</summary>
    public int RowStride { get; }

    /// <summary>
    /// (rows, kc, A micro-panel from its first row, B, dst, ldd, accumulate, epilogue, prefetch): the first rows (at
    /// most 4) of an MR-row A micro-panel, stored straight to C; null where the variant has none (its short tiles go
    /// through a scratch tile).
    /// </summary>
    public delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> FourRows { get; }

    /// <summary>As <see cref="FourRows"/>, at most 8 rows.</summary>
    public delegate*<int, int, float*, float*, float*, nint, bool, TileEpilogue*, float*, void> EightRows { get; }

    /// <summary>The AVX-512 14x32 kernel and its 4- and 8-row forms for one layout.</summary>
    public static TileKernels Vector512<TLayout>()
        where TLayout : struct, IPanelLayout =>
        new(&GemmMicrokernels.Kernel_14x32_Vector512<TLayout>, TLayout.RowStride,
            &GemmMicrokernels.Kernel_x32_Vector512<global::Sd.Kernels.Gemm.FourRows, TLayout>,
            &GemmMicrokernels.Kernel_x32_Vector512<global::Sd.Kernels.Gemm.EightRows, TLayout>);

    /// <summary>The AVX2 6x16 kernel for one layout (no short forms: its short tiles go through a scratch tile).</summary>
    public static TileKernels Vector256<TLayout>()
        where TLayout : struct, IPanelLayout =>
        new(&GemmMicrokernels.Kernel_6x16_Vector256<TLayout>, TLayout.RowStride);

    /// <summary>The portable 4x16 kernel for one layout.</summary>
    public static TileKernels Scalar<TLayout>()
        where TLayout : struct, IPanelLayout =>
        new(&GemmMicrokernels.Kernel_4x16_Scalar<TLayout>, TLayout.RowStride);
}
