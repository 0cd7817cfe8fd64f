using Sd.Kernels.Threading;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// Entry points for <see cref="ActivationKernels"/>: the variant is picked once from <see cref="Simd.Level"/>, and
/// large calls are tiled over <see cref="WorkerPool.Shared"/> (flat ops in 16-float-aligned ranges, row ops in row
/// ranges), so every tile but the last runs the unmasked vector body.
/// </summary>
public static unsafe class Pointwise
{
    private const int Block = 16;

    private static readonly delegate*<Activation, float*, float*, nint, void> ApplyKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &ActivationKernels.Apply_Vector512,
        SimdLevel.Vector256 => &ActivationKernels.Apply_Vector256,
        _ => &ActivationKernels.Apply_Scalar,
    };

    private static readonly delegate*<float*, float*, nint, nint, nint, void> GegluKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &ActivationKernels.Geglu_Vector512,
        SimdLevel.Vector256 => &ActivationKernels.Geglu_Vector256,
        _ => &ActivationKernels.Geglu_Scalar,
    };

    private static readonly delegate*<float*, float*, float*, nint, nint, Activation, void> BiasAddKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &ActivationKernels.BiasAdd_Vector512,
        SimdLevel.Vector256 => &ActivationKernels.BiasAdd_Vector256,
        _ => &ActivationKernels.BiasAdd_Scalar,
    };

    private static readonly delegate*<float*, float*, float*, nint, void> AddKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &ActivationKernels.Add_Vector512,
        SimdLevel.Vector256 => &ActivationKernels.Add_Vector256,
        _ => &ActivationKernels.Add_Scalar,
    };

    private static readonly delegate*<float*, float*, float*, nint, nint, void> AddRowScaledKernel = Simd.Level switch
    {
        SimdLevel.Vector512 => &ActivationKernels.AddRowScaled_Vector512,
        SimdLevel.Vector256 => &ActivationKernels.AddRowScaled_Vector256,
        _ => &ActivationKernels.AddRowScaled_Scalar,
    };

    /// <summary>dst = act(src) over <paramref name="count"/> floats; dst may equal src.</summary>
    public static void Apply(Activation activation, float* src, float* dst, nint count)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        var job = new Job { Kind = JobKind.Apply, Activation = activation, A = src, Dst = dst, Count = count };
        Run(ref job, count, (count + Block - 1) / Block);
    }

    public static void Apply(Activation activation, ReadOnlySpan<float> src, Span<float> dst)
    {
        RequireLength(dst, src.Length, nameof(dst));
        fixed (float* s = src)
        fixed (float* d = dst)
        {
            Apply(activation, s, d, src.Length);
        }
    }

    /// <summary>
    /// GEGLU: src is [rows, 2F] (value | gate), dst rows of F floats at <paramref name="dstStride"/>:
    /// dst = value * gelu(gate). dst may equal src with dstStride = 2F.
    /// </summary>
    public static void Geglu(float* src, float* dst, nint rows, nint features, nint dstStride)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        var job = new Job { Kind = JobKind.Geglu, A = src, Dst = dst, Count = features, Stride = dstStride };
        Run(ref job, rows * features * 2, rows);
    }

    /// <summary><see cref="Geglu(float*, float*, nint, nint, nint)"/> on the calling thread, for kernels that fuse it into their own tasks.</summary>
    internal static void GegluRows(float* src, float* dst, nint rows, nint features, nint dstStride) =>
        GegluKernel(src, dst, rows, features, dstStride);

    public static void Geglu(ReadOnlySpan<float> src, Span<float> dst, int features)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        if (src.Length % (2 * features) != 0)
        {
            throw new ArgumentException($"{src.Length} floats are not whole rows of 2 x {features}", nameof(src));
        }
        int rows = src.Length / (2 * features);
        RequireLength(dst, rows * features, nameof(dst));
        fixed (float* s = src)
        fixed (float* d = dst)
        {
            Geglu(s, d, rows, features, features);
        }
    }

    /// <summary>dst[r, c] = act(src[r, c] + bias[c]) over [rows, channels]; dst may equal src.</summary>
    public static void BiasAdd(float* src, float* bias, float* dst, nint rows, nint channels, Activation activation = Activation.None)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        var job = new Job { Kind = JobKind.BiasAdd, Activation = activation, A = src, B = bias, Dst = dst, Count = channels };
        Run(ref job, rows * channels, rows);
    }

    public static void BiasAdd(ReadOnlySpan<float> src, ReadOnlySpan<float> bias, Span<float> dst, Activation activation = Activation.None)
    {
        if (bias.IsEmpty || src.Length % bias.Length != 0)
        {
            throw new ArgumentException($"{src.Length} floats are not whole rows of {bias.Length} channels", nameof(src));
        }
        RequireLength(dst, src.Length, nameof(dst));
        fixed (float* s = src)
        fixed (float* b = bias)
        fixed (float* d = dst)
        {
            BiasAdd(s, b, d, src.Length / bias.Length, bias.Length, activation);
        }
    }

    /// <summary>dst = a + b over <paramref name="count"/> floats; dst may equal a or b (residual adds in place).</summary>
    public static void Add(float* a, float* b, float* dst, nint count)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        var job = new Job { Kind = JobKind.Add, A = a, B = b, Dst = dst, Count = count };
        Run(ref job, count, (count + Block - 1) / Block);
    }

    /// <summary>acc[r, :] += scales[r] x src[r, :] over <paramref name="rows"/> rows of <paramref name="channels"/> floats, each a fused multiply-add.</summary>
    public static void AddRowScaled(float* src, float* scales, float* acc, nint rows, nint channels)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        var job = new Job { Kind = JobKind.AddRowScaled, A = src, B = scales, Dst = acc, Count = channels };
        Run(ref job, (long)rows * channels, rows);
    }

    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> dst)
    {
        if (b.Length != a.Length)
        {
            throw new ArgumentException($"b holds {b.Length} floats, a holds {a.Length}", nameof(b));
        }
        RequireLength(dst, a.Length, nameof(dst));
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* d = dst)
        {
            Add(pa, pb, d, a.Length);
        }
    }

    private static void RequireLength(Span<float> destination, int length, string name)
    {
        if (destination.Length < length)
        {
            throw new ArgumentException($"destination holds {destination.Length} floats, needs {length}", name);
        }
    }

    private enum JobKind
    {
        Apply,
        Geglu,
        BiasAdd,
        Add,
        AddRowScaled,
    }

    /// <summary>One call, on the caller's stack while the pool runs it. Units are 16-float blocks or rows.</summary>
    private struct Job
    {
        public JobKind Kind;
        public Activation Activation;
        public float* A;
        public float* B;
        public float* Dst;
        public nint Count; // flat ops: floats; row ops: floats per row (features / channels)
        public nint Stride; // GEGLU output row stride
        public nint Units;
        public int Tiles;
    }

    private static void Run(ref Job job, long elements, nint units)
    {
        if (units <= 0)
        {
            return;
        }
        if (job.Activation is < Activation.None or > Activation.QuickGelu)
        {
            throw new ArgumentOutOfRangeException(nameof(job.Activation), job.Activation, "unknown activation");
        }
        job.Units = units;
        job.Tiles = Tiling.Count(elements, units);
        fixed (Job* context = &job)
        {
            if (job.Tiles == 1)
            {
                RunTile(context, 0);
            }
            else
            {
                WorkerPool.Shared.Run(&RunTile, context, job.Tiles);
            }
        }
    }

    private static void RunTile(void* context, int tile)
    {
        Job* job = (Job*)context;
        nint start = Tiling.Start(tile, job->Tiles, job->Units);
        nint end = Tiling.Start(tile + 1, job->Tiles, job->Units);
        switch (job->Kind)
        {
            case JobKind.Apply:
            case JobKind.Add:
                nint first = start * Block;
                nint count = Math.Min(end * Block, job->Count) - first;
                if (job->Kind == JobKind.Apply)
                {
                    ApplyKernel(job->Activation, job->A + first, job->Dst + first, count);
                }
                else
                {
                    AddKernel(job->A + first, job->B + first, job->Dst + first, count);
                }
                break;
            case JobKind.Geglu:
                GegluKernel(job->A + start * 2 * job->Count, job->Dst + start * job->Stride, end - start,
                    job->Count, job->Stride);
                break;
            case JobKind.BiasAdd:
                BiasAddKernel(job->A + start * job->Count, job->B, job->Dst + start * job->Count, end - start,
                    job->Count, job->Activation);
                break;
            case JobKind.AddRowScaled:
                AddRowScaledKernel(job->A + start * job->Count, job->B + start, job->Dst + start * job->Count, end - start, job->Count);
                break;
        }
    }
}
