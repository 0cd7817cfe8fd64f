using System.Runtime.CompilerServices;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Normalization;

/// <summary>
/// Channels-last GroupNorm: src [N, HW, C] with G groups of C/G consecutive channels, per (image, group) mean and
/// biased variance like PyTorch, then dst = act((x - mean) * gamma * rstd + beta); dst may equal src. Exactly two
/// passes over memory per image:
/// <list type="number">
/// <item>Statistics, in chunks of up to 64 rows: per-channel float sums give a chunk mean m, then a second look at
/// the chunk (still in L1, see <see cref="INormRows"/>) accumulates d = x - m and d^2, and the exact corrected
/// two-pass formula mean = m + sum(d)/R, M2 = sum(d^2) - sum(d)^2/R gives each channel's chunk statistics with no
/// cancellation however large the mean. Channels are folded into groups and chunks into the running statistics with
/// Chan's parallel formula in double, so float error never spans more than one chunk of one channel (64 terms), and
/// per-thread partials combine the same way.</item>
/// <item>Normalize: per-channel mean (its float rounding hi), scale = gamma * rstd(group) and
/// shift = beta - (mean - hi) * scale are laid out once per tile, so the row loop is one subtract and one FMA per
/// element, vectorized across C whatever C/G is, with the activation fused.</item>
/// </list>
/// Subtracting the mean before scaling (rather than PyTorch's x * scale + (beta - mean * scale)) keeps large-mean
/// inputs accurate: x - mean is exact when x is near the mean, where the PyTorch form cancels two large products.
/// Large images are tiled over <see cref="WorkerPool.Shared"/> in both passes.
/// </summary>
[SkipLocalsInit]
public static unsafe class GroupNormKernels
{
    /// <summary>Per-channel scratch lives on the stack: 3 arrays of this many floats per task, 48 KiB.</summary>
    public const int MaxChannels = 4096;

    /// <summary>Rows per statistics chunk: float sums never run longer than this; longer runs merge in double.</summary>
    private const int ChunkRows = 64;

    /// <summary>
    /// Per-task group statistics live on the caller's stack: at most 2048 entries (32 KiB), so statistics tasks are
    /// capped at 2048 / G (G = 32: 64 tasks); past G = 2048 one task holds G entries.
    /// </summary>
    private const int PartialBudget = 2048;

    public static void GroupNorm_Scalar(float* src, float* dst, int n, int hw, int channels, int groups, float eps,
        float* gamma, float* beta, Activation activation) =>
        Run<ScalarRows>(src, dst, n, hw, channels, groups, eps, gamma, beta, activation);

    public static void GroupNorm_Vector256(float* src, float* dst, int n, int hw, int channels, int groups, float eps,
        float* gamma, float* beta, Activation activation) =>
        Run<Rows256>(src, dst, n, hw, channels, groups, eps, gamma, beta, activation);

    public static void GroupNorm_Vector512(float* src, float* dst, int n, int hw, int channels, int groups, float eps,
        float* gamma, float* beta, Activation activation) =>
        Run<Rows512>(src, dst, n, hw, channels, groups, eps, gamma, beta, activation);

    /// <summary>Throws unless the shape is one the kernels handle.</summary>
    public static void Validate(int n, int hw, int channels, int groups, float eps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(hw);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(channels, MaxChannels);
        if (groups < 1 || channels % groups != 0)
        {
            throw new ArgumentException($"{groups} groups do not divide {channels} channels", nameof(groups));
        }
        if (!(eps >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be a non-negative number");
        }
    }

    /// <summary>Count-free running statistics of one group: counts follow from the row ranges.</summary>
    private struct GroupStat
    {
        public double Mean;
        public double M2; // after Finish: rstd
    }

    /// <summary>One image's call, on the caller's stack while the pool runs it.</summary>
    private struct Job
    {
        public float* Src;
        public float* Dst;
        public float* Gamma;
        public float* Beta;
        public int Rows;
        public int Channels;
        public int Groups;
        public int Chunks;
        public int StatTasks;
        public int NormTasks;
        public GroupStat* Stats; // [StatTasks, Groups]; after Finish, row 0 holds (mean, rstd)
    }

    private static void Run<TRows>(float* src, float* dst, int n, int hw, int channels, int groups, float eps,
        float* gamma, float* beta, Activation activation)
        where TRows : INormRows
    {
        Validate(n, hw, channels, groups, eps);
        delegate*<void*, int, void> normalize = activation switch
        {
            Activation.None => &Normalize<TRows, IdentityActivation>,
            Activation.Silu => &Normalize<TRows, SiluActivation>,
            Activation.Gelu => &Normalize<TRows, GeluActivation>,
            Activation.QuickGelu => &Normalize<TRows, QuickGeluActivation>,
            _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation"),
        };
        if (n == 0 || hw == 0)
        {
            return;
        }
        int chunks = (hw + ChunkRows - 1) / ChunkRows;
        long imageFloats = (long)hw * channels;
        int statTasks = Math.Min(Tiling.Count(imageFloats, chunks), Math.Max(1, PartialBudget / groups));
        GroupStat* stats = stackalloc GroupStat[statTasks * groups];
        var job = new Job
        {
            Gamma = gamma,
            Beta = beta,
            Rows = hw,
            Channels = channels,
            Groups = groups,
            Chunks = chunks,
            StatTasks = statTasks,
            NormTasks = Tiling.Count(imageFloats, hw),
            Stats = stats,
        };
        for (int image = 0; image < n; image++)
        {
            job.Src = src + image * imageFloats;
            job.Dst = dst + image * imageFloats;
            Launch(&Statistics<TRows>, &job, job.StatTasks);
            Finish(&job, eps);
            Launch(normalize, &job, job.NormTasks);
        }
    }

    private static void Launch(delegate*<void*, int, void> task, Job* job, int tasks)
    {
        if (tasks == 1)
        {
            task(job, 0);
        }
        else
        {
            WorkerPool.Shared.Run(task, job, tasks);
        }
    }

    /// <summary>Rows [first, end) of statistics task <paramref name="task"/>: a whole number of chunks.</summary>
    private static (int First, int End) StatRows(Job* job, int task)
    {
        int firstChunk = (int)((long)job->Chunks * task / job->StatTasks);
        int endChunk = (int)((long)job->Chunks * (task + 1) / job->StatTasks);
        return (firstChunk * ChunkRows, Math.Min(endChunk * ChunkRows, job->Rows));
    }

    /// <summary>Pass 1 for one task's chunks: group statistics into Stats[task].</summary>
    private static void Statistics<TRows>(void* context, int task)
        where TRows : INormRows
    {
        Job* job = (Job*)context;
        int channels = job->Channels;
        int padded = (channels + 15) & ~15;
        float* mean = stackalloc float[padded];
        float* dev = stackalloc float[padded];
        float* dev2 = stackalloc float[padded];
        GroupStat* stats = job->Stats + task * job->Groups;
        new Span<GroupStat>(stats, job->Groups).Clear();
        (int first, int end) = StatRows(job, task);
        for (int r0 = first; r0 < end; r0 += ChunkRows)
        {
            int rows = Math.Min(ChunkRows, end - r0);
            TRows.ChunkStatistics(job->Src + (nint)r0 * channels, rows, channels, mean, dev, dev2);
            MergeChunk(stats, mean, dev, dev2, rows, r0 - first, job->Groups, channels / job->Groups);
        }
    }

    /// <summary>Folds one chunk's per-channel (m, dev, dev2) into the running group statistics, in double.</summary>
    private static void MergeChunk(GroupStat* stats, float* mean, float* dev, float* dev2, int rows, int rowsBefore,
        int groups, int groupSize)
    {
        double inverseRows = 1.0 / rows;
        double countBefore = (double)rowsBefore * groupSize;
        double count = (double)rows * groupSize;
        for (int g = 0; g < groups; g++)
        {
            int c0 = g * groupSize;
            double sumOfMeans = 0;
            for (int c = c0; c < c0 + groupSize; c++)
            {
                sumOfMeans += mean[c] + dev[c] * inverseRows;
            }
            double groupMean = sumOfMeans / groupSize;
            double m2 = 0;
            for (int c = c0; c < c0 + groupSize; c++)
            {
                double d = dev[c];
                double offset = mean[c] + d * inverseRows - groupMean;
                m2 += dev2[c] - d * d * inverseRows + rows * offset * offset;
            }
            Chan(ref stats[g], countBefore, groupMean, m2, count);
        }
    }

    /// <summary>Chan et al.'s pairwise update: (mean, M2) of countA values merged with (meanB, m2B) of countB.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Chan(ref GroupStat a, double countA, double meanB, double m2B, double countB)
    {
        double total = countA + countB;
        double delta = meanB - a.Mean;
        a.Mean += delta * (countB / total);
        a.M2 += m2B + delta * delta * (countA * countB / total);
    }

    /// <summary>Merges the task partials into Stats[0] and turns M2 into rstd = 1 / sqrt(M2 / count + eps).</summary>
    private static void Finish(Job* job, float eps)
    {
        int groupSize = job->Channels / job->Groups;
        for (int g = 0; g < job->Groups; g++)
        {
            ref GroupStat total = ref job->Stats[g];
            (int first, int end) = StatRows(job, 0);
            double count = (double)(end - first) * groupSize;
            for (int task = 1; task < job->StatTasks; task++)
            {
                (first, end) = StatRows(job, task);
                GroupStat part = job->Stats[task * job->Groups + g];
                double partCount = (double)(end - first) * groupSize;
                Chan(ref total, count, part.Mean, part.M2, partCount);
                count += partCount;
            }
            double variance = Math.Max(total.M2 / count, 0);
            total.M2 = 1 / Math.Sqrt(variance + eps);
        }
    }

    /// <summary>Pass 2 for one tile of rows, activation fused.</summary>
    private static void Normalize<TRows, TAct>(void* context, int task)
        where TRows : INormRows
        where TAct : IActivation
    {
        Job* job = (Job*)context;
        int channels = job->Channels;
        int padded = (channels + 15) & ~15;
        int groupSize = channels / job->Groups;
        float* mean = stackalloc float[padded];
        float* scale = stackalloc float[padded];
        float* shift = stackalloc float[padded];
        for (int c = 0; c < channels; c++)
        {
            // The mean is split into its float rounding hi and the remainder lo; lo moves into the shift, so
            // x - hi is exact for large means and the remainder is not lost to float rounding of the mean.
            GroupStat stat = job->Stats[c / groupSize];
            float hi = (float)stat.Mean;
            double channelScale = job->Gamma[c] * stat.M2;
            mean[c] = hi;
            scale[c] = (float)channelScale;
            shift[c] = (float)(job->Beta[c] - (stat.Mean - hi) * channelScale);
        }
        for (int c = channels; c < padded; c++)
        {
            mean[c] = 0;
            scale[c] = 0;
            shift[c] = 0;
        }
        nint first = Tiling.Start(task, job->NormTasks, job->Rows);
        nint end = Tiling.Start(task + 1, job->NormTasks, job->Rows);
        for (nint r = first; r < end; r++)
        {
            TRows.NormalizeRow<TAct>(job->Src + r * channels, job->Dst + r * channels, mean, scale, shift, channels);
        }
    }
}
