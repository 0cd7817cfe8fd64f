using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Gemm;

/// <summary>
/// C[M,N] = A[M,K] W[N,K]^T (+ bias[N]) (+ residual[M,N]) with W pre-packed (<see cref="PackedWeights"/>) and A the
/// row-major activations (an NHWC tensor is [pixels, channels]). GotoBLAS/BLIS loop nest: the K dimension in blocks
/// of <see cref="Kc"/> (one B micro-panel, Kc x NR, stays in L1), A packed per task into MR-row micro-panels
/// (Mc x Kc in L2), the microkernel over MR x NR register tiles. Tasks are (row block, column-panel group) pairs
/// spread over <see cref="WorkerPool"/>.
/// </summary>
public static unsafe class GemmKernels
{
    /// <summary>K block: a 256 x 32 float B micro-panel is 32 KiB, inside Zen 5's 48 KiB L1D with room for A.</summary>
    public const int Kc = 256;

    /// <summary>Micro-panels of A per row block: Mc = 8 MR rows, an A block of Mc x Kc in L2.</summary>
    private const int MicroPanelsPerBlock = 8;

    /// <summary>The variant for this CPU, chosen once.</summary>
    public static GemmVariant Selected { get; } = Simd.Level switch
    {
        SimdLevel.Vector512 => GemmVariant.Vector512,
        SimdLevel.Vector256 => GemmVariant.Vector256,
        _ => GemmVariant.Scalar,
    };

    /// <summary>NR of the selected microkernel: the panel width weights are packed with.</summary>
    public static int PanelWidth => Selected.Nr;

    [ThreadStatic]
    private static float* t_scratch;

    /// <summary>
    /// Plain triple loop on unpacked W [N, K]: the test oracle. Accumulates in float in k order.
    /// </summary>
    public static void Reference(int m, int n, int k, float* a, int lda, float* w, int ldw, float* c, int ldc,
        float* bias, float* residual, int ldr)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                float sum = 0;
                for (int kk = 0; kk < k; kk++)
                {
                    sum += a[(nint)i * lda + kk] * w[(nint)j * ldw + kk];
                }
                if (bias != null)
                {
                    sum += bias[j];
                }
                if (residual != null)
                {
                    sum += residual[(nint)i * ldr + j];
                }
                c[(nint)i * ldc + j] = sum;
            }
        }
    }

    private struct Context
    {
        public int M;
        public int N;
        public int K;
        public float* A;
        public int Lda;
        public PackedWeightsView B;
        public float* C;
        public int Ldc;
        public float* Bias;
        public float* Residual;
        public int Ldr;
        /// <summary>C already holds the residual: the first K block adds instead of overwriting.</summary>
        public bool AccumulateIntoC;
        public int ColumnGroups;
        public int PanelsPerGroup;
        public int Mr;
        public int Nr;
        public delegate*<int, float*, float*, float*, nint, bool, void> Microkernel;
    }

    private struct PackedWeightsView
    {
        public float* Data;
        public int Panels;
        public int K;
    }

    /// <summary>
    /// C = A W^T (+ bias) (+ residual). <paramref name="residual"/> may be C itself (ldr == ldc): the product is then
    /// accumulated onto C in place, an in-place skip connection. Otherwise it must not overlap C. Runs on
    /// <see cref="WorkerPool.Shared"/>.
    /// </summary>
    public static void Multiply(int m, float* a, int lda, PackedWeights w, float* c, int ldc,
        float* bias = null, float* residual = null, int ldr = 0) =>
        Multiply(Selected, m, a, lda, w, c, ldc, bias, residual, ldr);

    /// <summary><see cref="Multiply(int, float*, int, PackedWeights, float*, int, float*, float*, int)"/> with an explicit variant (tests, benchmarks).</summary>
    public static void Multiply(GemmVariant variant, int m, float* a, int lda, PackedWeights w, float* c, int ldc,
        float* bias, float* residual, int ldr)
    {
        if (w.PanelWidth != variant.Nr)
        {
            throw new ArgumentException($"weights packed for NR={w.PanelWidth}, the {variant.Name} kernel uses NR={variant.Nr}", nameof(w));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(lda, w.K);
        ArgumentOutOfRangeException.ThrowIfLessThan(ldc, w.N);
        if (m <= 0)
        {
            return;
        }
        bool inPlace = residual == c;
        if (inPlace && ldr != ldc)
        {
            throw new ArgumentException("an in-place residual (residual == C) needs ldr == ldc", nameof(ldr));
        }
        int mc = variant.Mr * MicroPanelsPerBlock;
        int rowBlocks = (m + mc - 1) / mc;
        int wanted = WorkerPool.Shared.ThreadCount * 4;
        int groups = Math.Clamp((wanted + rowBlocks - 1) / rowBlocks, 1, w.Panels);
        int panelsPerGroup = (w.Panels + groups - 1) / groups;
        groups = (w.Panels + panelsPerGroup - 1) / panelsPerGroup;
        var context = new Context
        {
            M = m, N = w.N, K = w.K, A = a, Lda = lda, C = c, Ldc = ldc, Bias = bias, Ldr = ldr,
            Residual = inPlace ? null : residual, AccumulateIntoC = inPlace,
            B = new PackedWeightsView { Data = w.Data, Panels = w.Panels, K = w.K },
            ColumnGroups = groups, PanelsPerGroup = panelsPerGroup,
            Mr = variant.Mr, Nr = variant.Nr, Microkernel = variant.Microkernel,
        };
        int tasks = rowBlocks * groups;
        if (tasks == 1 || (long)m * w.N * w.K < 1 << 18)
        {
            for (int t = 0; t < tasks; t++)
            {
                RunTask(&context, t);
            }
        }
        else
        {
            WorkerPool.Shared.Run(&RunTask, &context, tasks);
        }
    }

    private static void RunTask(void* state, int index)
    {
        Context* ctx = (Context*)state;
        int mr = ctx->Mr, nr = ctx->Nr, mc = mr * MicroPanelsPerBlock;
        int i0 = index / ctx->ColumnGroups * mc;
        int rows = Math.Min(mc, ctx->M - i0);
        int p0 = index % ctx->ColumnGroups * ctx->PanelsPerGroup;
        int p1 = Math.Min(p0 + ctx->PanelsPerGroup, ctx->B.Panels);
        float* packedA = Scratch(mc * Kc + mr * nr);
        float* tile = packedA + mc * Kc;
        for (int pc = 0; pc < ctx->K; pc += Kc)
        {
            int kc = Math.Min(Kc, ctx->K - pc);
            bool first = pc == 0 && !ctx->AccumulateIntoC;
            bool last = pc + kc == ctx->K;
            PackA(ctx->A + (nint)i0 * ctx->Lda + pc, ctx->Lda, rows, kc, mr, packedA);
            for (int p = p0; p < p1; p++)
            {
                float* bPanel = ctx->B.Data + ((nint)p * ctx->B.K + pc) * nr;
                int j0 = p * nr;
                int cols = Math.Min(nr, ctx->N - j0);
                for (int ir = 0; ir < rows; ir += mr)
                {
                    int r = Math.Min(mr, rows - ir);
                    float* cTile = ctx->C + (nint)(i0 + ir) * ctx->Ldc + j0;
                    if (r == mr && cols == nr)
                    {
                        ctx->Microkernel(kc, packedA + ir * kc, bPanel, cTile, ctx->Ldc, !first);
                    }
                    else
                    {
                        ctx->Microkernel(kc, packedA + ir * kc, bPanel, tile, nr, false);
                        MergeTile(tile, nr, cTile, ctx->Ldc, r, cols, first);
                    }
                    if (last)
                    {
                        float* residual = ctx->Residual == null ? null : ctx->Residual + (nint)(i0 + ir) * ctx->Ldr + j0;
                        float* bias = ctx->Bias == null ? null : ctx->Bias + j0;
                        Epilogue(cTile, ctx->Ldc, r, cols, bias, residual, ctx->Ldr);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Copies rows x kc of A into MR-row micro-panels, k-major (MR values per k), zero-padding the last panel, so
    /// the microkernel reads A sequentially and always computes full MR rows.
    /// </summary>
    private static void PackA(float* a, int lda, int rows, int kc, int mr, float* packed)
    {
        for (int ir = 0; ir < rows; ir += mr)
        {
            float* panel = packed + ir * kc;
            int r = Math.Min(mr, rows - ir);
            for (int rr = 0; rr < r; rr++)
            {
                float* src = a + (nint)(ir + rr) * lda;
                float* dst = panel + rr;
                for (int k = 0; k < kc; k++)
                {
                    dst[k * mr] = src[k];
                }
            }
            for (int rr = r; rr < mr; rr++)
            {
                for (int k = 0; k < kc; k++)
                {
                    panel[k * mr + rr] = 0;
                }
            }
        }
    }

    private static void MergeTile(float* tile, int ldt, float* c, int ldc, int rows, int cols, bool overwrite)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++)
            {
                c[(nint)r * ldc + j] = overwrite ? tile[r * ldt + j] : c[(nint)r * ldc + j] + tile[r * ldt + j];
            }
        }
    }

    private static void Epilogue(float* c, int ldc, int rows, int cols, float* bias, float* residual, int ldr)
    {
        if (bias == null && residual == null)
        {
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            float* row = c + (nint)r * ldc;
            float* res = residual == null ? null : residual + (nint)r * ldr;
            int j = 0;
            for (; j <= cols - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                Vector256<float> v = Vector256.Load(row + j);
                if (bias != null) v += Vector256.Load(bias + j);
                if (res != null) v += Vector256.Load(res + j);
                v.Store(row + j);
            }
            for (; j < cols; j++)
            {
                row[j] += (bias == null ? 0 : bias[j]) + (res == null ? 0 : res[j]);
            }
        }
    }

    /// <summary>Per-thread packing buffer, allocated once per thread and kept (a few hundred KiB).</summary>
    private static float* Scratch(int floats)
    {
        if (t_scratch == null)
        {
            int size = GemmMicrokernels.Mr512 * MicroPanelsPerBlock * Kc + GemmMicrokernels.Mr512 * GemmMicrokernels.Nr512;
            t_scratch = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(size, floats) * sizeof(float), 64);
        }
        return t_scratch;
    }
}
