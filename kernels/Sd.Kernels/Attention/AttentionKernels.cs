using Sd.Kernels.Memory;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Attention;

/// <summary>
/// Scaled dot-product attention kernels (see <see cref="AttentionProblem"/> for the layout). Variants:
/// <list type="bullet">
/// <item><see cref="Attention_Scalar"/>: the reference, one query row at a time, single-threaded.</item>
/// <item><c>FlashAttention_*</c>: blocks of Br = 32 (AVX2: 16) queries against tiles of Bc = 256 keys with an
/// online softmax (running max and sum per query, the output accumulator rescaled when the max grows, lazily: only
/// by more than <see cref="ScoreTile{TVec}.RescaleLimit"/>); scratch is three tiles per thread, never an Lq x Lk
/// matrix.</item>
/// <item><c>PartialSoftmaxAttention_*</c>: whole score rows of a query block, one (offset, sum) reduction, the
/// 1/sum normalization folded into the output ("Speed Is All You Need", Chen et al. 2023); best when a score row
/// is short (cross-attention over 77 text tokens). The paper recomputes exp inside the P V product; here that
/// product reads each score once per 8 channels, so exp is written over the scores once instead. It runs the flash
/// loop with a single tile spanning all keys.</item>
/// <item><c>NaiveAttention_*</c>: the three-pass baseline with the per-head Lq x Lk probability matrix
/// materialized, built from the same microkernels so that comparisons measure the memory traffic only.</item>
/// </list>
/// The vector variants share one layout, chosen because it needs no packing of K or V and no padding of d: a block
/// of query rows is transposed into lanes (Qt[c][query]), so S^T = K Qt is an outer-product microkernel (broadcast
/// K[j,c] times a vector of queries), the softmax reductions over keys are vertical (one running max and sum per lane,
/// no horizontal shuffles), and O^T += V^T P^T is again broadcast V[j,c] times a vector of queries. K and V are read
/// with their strides (long calls first copy them into contiguous head planes, unpadded: see
/// <see cref="CompactKeysMinQueries"/>), any head dim works at full width, and only the query count is padded to the
/// lane count. Scores are kept in base-2 units (log2 e folded into the Q scale) for a short exp2 (see
/// <see cref="IAttentionTiles{TVec}.Exp2"/>). Multi-threaded over (batch, head, query range) tasks on
/// <see cref="WorkerPool.Shared"/>; call from outside pool tasks.
/// </summary>
public static unsafe partial class AttentionKernels
{
    /// <summary>
    /// Largest key count for which <see cref="Run"/> uses the partially fused softmax rather than flash attention.
    /// Single-threaded on Zen 5 (AVX-512, shared 2-core VM, so +-2% noise), d = 40, 2048 queries, GFLOP/s
    /// (4 Lq Lk d flops):
    /// <code>
    /// keys      77    128    256    512   1024   2048   4096
    /// flash    158    172    181    182    188    186    185   (256-key tiles)
    /// partial  158    172    182    186    190    186    186
    /// </code>
    /// Up to 128 keys the two do the same work (one tile). Beyond, partial stays level or ~1% ahead (no rescaling)
    /// while its score block, 128 bytes per key, stays in L2; flash's score scratch is bounded (32 KiB per thread)
    /// however long the sequence. The cut is where partial's block reaches 128 KiB, which fits any current L2 beside the
    /// streamed K/V rows: cross-attention (77 keys) and self-attention up to 32x32 latents take partial, 4096-token
    /// self-attention and larger takes flash.
    /// </summary>
    public const int PartialSoftmaxMaxKeys = 1024;

    private static readonly delegate*<in AttentionProblem, void> Flash = Simd.Level switch
    {
        SimdLevel.Vector512 => &FlashAttention_Vector512,
        SimdLevel.Vector256 => &FlashAttention_Vector256,
        _ => &Attention_Scalar,
    };

    private static readonly delegate*<in AttentionProblem, void> Partial = Simd.Level switch
    {
        SimdLevel.Vector512 => &PartialSoftmaxAttention_Vector512,
        SimdLevel.Vector256 => &PartialSoftmaxAttention_Vector256,
        _ => &Attention_Scalar,
    };

    /// <summary>Validates the problem and runs the fastest variant for its shape on this machine.</summary>
    public static void Run(in AttentionProblem problem)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Attention,
            new Diagnostics.KernelShape("attention {0}x{1} heads, {2} queries x {3} keys, head dim {4}", problem.Batch, problem.Heads,
                problem.QueryLength, problem.KeyLength, problem.HeadDim));
        problem.Validate();
        Diagnostics.FlopCounter.Add(4L * problem.Batch * problem.Heads * problem.QueryLength * problem.KeyLength * problem.HeadDim);
        if (problem.KeyLength <= PartialSoftmaxMaxKeys)
        {
            Partial(problem);
        }
        else
        {
            Flash(problem);
        }
    }

    /// <summary>
    /// Reference: per query row, the score row, a softmax with max subtraction, then the weighted sum of V rows.
    /// Plain float arithmetic; tests check it against a double-precision evaluation.
    /// </summary>
    public static void Attention_Scalar(in AttentionProblem p)
    {
        int d = p.HeadDim;
        float scale = p.Scale;
        float* scores = Scratch.Get(p.KeyLength);
        for (int b = 0; b < p.Batch; b++)
        {
            for (int h = 0; h < p.Heads; h++)
            {
                float* q = p.Q + (nint)b * p.QueryLength * p.Ldq + (nint)h * d;
                float* k = p.K + (nint)b * p.KeyLength * p.Ldk + (nint)h * d;
                float* v = p.V + (nint)b * p.KeyLength * p.Ldv + (nint)h * d;
                float* o = p.O + (nint)b * p.QueryLength * p.Ldo + (nint)h * d;
                for (int i = 0; i < p.QueryLength; i++)
                {
                    float* qi = q + i * p.Ldq;
                    int keys = p.Causal ? Math.Min(p.KeyLength, i + 1) : p.KeyLength;
                    float max = float.NegativeInfinity;
                    for (int j = 0; j < keys; j++)
                    {
                        float* kj = k + j * p.Ldk;
                        float dot = 0;
                        for (int c = 0; c < d; c++)
                        {
                            dot += qi[c] * kj[c];
                        }
                        scores[j] = dot * scale;
                        max = MathF.Max(max, scores[j]);
                    }
                    float sum = 0;
                    for (int j = 0; j < keys; j++)
                    {
                        scores[j] = MathF.Exp(scores[j] - max);
                        sum += scores[j];
                    }
                    float inverse = 1f / sum;
                    float* oi = o + i * p.Ldo;
                    for (int c = 0; c < d; c++)
                    {
                        float acc = 0;
                        for (int j = 0; j < keys; j++)
                        {
                            acc += scores[j] * v[j * p.Ldv + c];
                        }
                        oi[c] = acc * inverse;
                    }
                }
            }
        }
    }

    /// <summary>What one task works on: one head of one batch item and a range of query rows.</summary>
    private struct HeadSlice
    {
        public float* Q; // row Row0 of the head's queries
        public float* K; // row 0 of the head's keys
        public float* V;
        public float* O; // row Row0 of the head's outputs
        public nint Ldk; // the K and V row strides: the problem's, or the head dim in compact K/V
        public nint Ldv;
        public int Row0;
        public int Rows;
    }

    /// <summary>A parallel call's shared state, on the caller's stack for the duration of the pool call.</summary>
    private struct Job
    {
        public AttentionProblem Problem;
        public delegate*<Job*, HeadSlice*, float*, void> Kernel;
        public nint ScratchFloats; // per task, from the thread's cached buffer
        public int RowsPerTask;
        public int TasksPerHead;
        public int KeyTile; // keys per online-softmax tile (flash and partial softmax)
        public float* CompactKeys; // null, or K then V as [batch * heads, keys, d] (see CompactKeys)
    }

    /// <summary>
    /// Splits the problem into (batch, head, query range) tasks, about 8 per pool thread when the heads alone are
    /// too few, ranges a multiple of <paramref name="blockRows"/> so only the last block of a head is partial; runs
    /// <paramref name="kernel"/> on every task. <paramref name="splitHeads"/> false keeps one task per head.
    /// </summary>
    private static void RunParallel(
        in AttentionProblem problem, delegate*<Job*, HeadSlice*, float*, void> kernel, nint scratchFloats,
        int blockRows, bool splitHeads, int keyTile = 0, float* compactKeys = null)
    {
        int heads = problem.Batch * problem.Heads;
        int blocks = (problem.QueryLength + blockRows - 1) / blockRows;
        int splits = 1;
        if (splitHeads)
        {
            int wanted = 8 * WorkerPool.Shared.ThreadCount;
            splits = Math.Clamp((wanted + heads - 1) / heads, 1, blocks);
        }
        int blocksPerTask = (blocks + splits - 1) / splits;
        splits = (blocks + blocksPerTask - 1) / blocksPerTask;
        Job job = new()
        {
            Problem = problem,
            Kernel = kernel,
            ScratchFloats = scratchFloats,
            RowsPerTask = blocksPerTask * blockRows,
            TasksPerHead = splits,
            KeyTile = keyTile,
            CompactKeys = compactKeys,
        };
        WorkerPool.Shared.Run(&RunTask, &job, heads * splits);
    }

    private static void RunTask(void* context, int task)
    {
        Job* job = (Job*)context;
        ref AttentionProblem p = ref job->Problem;
        int head = task / job->TasksPerHead;
        int b = head / p.Heads;
        nint channel = (nint)(head % p.Heads) * p.HeadDim;
        HeadSlice slice;
        slice.Row0 = task % job->TasksPerHead * job->RowsPerTask;
        slice.Rows = Math.Min(job->RowsPerTask, p.QueryLength - slice.Row0);
        slice.Q = p.Q + ((nint)b * p.QueryLength + slice.Row0) * p.Ldq + channel;
        if (job->CompactKeys != null)
        {
            slice.K = CompactPlane(job, head);
            slice.V = CompactPlane(job, p.Batch * p.Heads + head);
            slice.Ldk = slice.Ldv = p.HeadDim;
        }
        else
        {
            slice.K = HeadRows(p.K, p.Ldk, p, head);
            slice.V = HeadRows(p.V, p.Ldv, p, head);
            slice.Ldk = p.Ldk;
            slice.Ldv = p.Ldv;
        }
        slice.O = p.O + ((nint)b * p.QueryLength + slice.Row0) * p.Ldo + channel;
        job->Kernel(job, &slice, Scratch.Get(job->ScratchFloats));
    }

    /// <summary>
    /// Fewest queries for which the vector variants first copy every head's K and V rows, strided slices of the fused
    /// QKV (or KV) projection, into contiguous [batch x heads, keys, d] planes (the calling thread's buffer, one pool
    /// pass): each query block then streams whole adjacent cache lines instead of d floats from each of 8 rows 3 x
    /// heads x d floats apart. The copy (2 Lk d floats per head) is repaid by the Lq / 32 query blocks that read it. Two
    /// threads, alternating runs: 2x8 heads, 4096 tokens, d = 40: 128.3-129.1 -> 121.4-122.0 ms; 1024 tokens, d = 80,
    /// within noise (15.1-15.7 -> 15.2-15.4 ms). An earlier form that copied per task (the same copy on two threads)
    /// measured 123.8-131.1 -> 116.4-119.6 ms, 14.6-15.2 -> 14.3-14.6 ms and, for 4096 queries x 77 text tokens,
    /// 4.00-4.08 -> 3.93-3.97 ms.
    /// </summary>
    private const int CompactKeysMinQueries = 1024;

    /// <summary>
    /// Widest head dim that is made contiguous: rows of 2 KiB (the VAE's single 512-wide head) are whole pages'
    /// worth of lines already, and a single head would be copied by one thread.
    /// </summary>
    private const int CompactKeysMaxHeadDim = 80;

    /// <summary>The problem's K and V as contiguous head planes when that pays, else null.</summary>
    private static float* CompactKeys(in AttentionProblem problem)
    {
        int d = problem.HeadDim;
        if (problem.QueryLength < CompactKeysMinQueries || d > CompactKeysMaxHeadDim || (problem.Ldk == d && problem.Ldv == d))
        {
            return null;
        }
        var job = new Job
        {
            Problem = problem, CompactKeys = Scratch.Keys(2 * (nint)problem.Batch * problem.Heads * problem.KeyLength * d),
        };
        WorkerPool.Shared.Run(&CompactHead, &job, problem.Batch * problem.Heads);
        return job.CompactKeys;
    }

    /// <summary>Copies one head's K and V rows into its planes of the job's compact buffer.</summary>
    private static void CompactHead(void* context, int head)
    {
        Job* job = (Job*)context;
        ref AttentionProblem p = ref job->Problem;
        int d = p.HeadDim;
        float* k = HeadRows(p.K, p.Ldk, p, head), v = HeadRows(p.V, p.Ldv, p, head);
        float* kc = CompactPlane(job, head), vc = CompactPlane(job, p.Batch * p.Heads + head);
        for (int j = 0; j < p.KeyLength; j++)
        {
            Buffer.MemoryCopy(k + j * p.Ldk, kc + j * d, (long)d * sizeof(float), (long)d * sizeof(float));
            Buffer.MemoryCopy(v + j * p.Ldv, vc + j * d, (long)d * sizeof(float), (long)d * sizeof(float));
        }
    }

    /// <summary>Row 0 of head <paramref name="head"/> (batch-major: b x heads + h) in the problem's K or V.</summary>
    private static float* HeadRows(float* data, nint ld, in AttentionProblem p, int head) =>
        data + (nint)(head / p.Heads) * p.KeyLength * ld + (nint)(head % p.Heads) * p.HeadDim;

    /// <summary>A compact buffer's plane: head h's keys are plane h, its values plane batch x heads + h.</summary>
    private static float* CompactPlane(Job* job, int plane) =>
        job->CompactKeys + (nint)plane * job->Problem.KeyLength * job->Problem.HeadDim;

    /// <summary>
    /// Per-thread scratch, 64-byte aligned, allocated on a thread's first use and grown (never shrunk) when a call
    /// needs more, so steady-state calls allocate nothing. The naive baseline's score matrix lives here too, which is
    /// why that variant's memory stays resident after its call.
    /// </summary>
    private static class Scratch
    {
        [ThreadStatic] private static ThreadScratch? t_buffer;
        [ThreadStatic] private static ThreadScratch? t_keys;

        /// <summary>A task's tiles.</summary>
        public static float* Get(nint floats) => ThreadScratch.Get(ref t_buffer, floats);

        /// <summary>A call's compact K and V: apart from <see cref="Get"/>'s, which the calling thread's tasks use meanwhile.</summary>
        public static float* Keys(nint floats) => ThreadScratch.Get(ref t_keys, floats);
    }
}
