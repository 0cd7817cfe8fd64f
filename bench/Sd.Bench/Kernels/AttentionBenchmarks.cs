using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Sd.Kernels;
using Sd.Kernels.Attention;

namespace Sd.Bench.Kernels;

/// <summary>
/// SD 1.5 UNet attention at 512x512 (64x64 latents), batch 2 (classifier-free guidance), 8 heads, on the widest
/// SIMD level the machine has. FLOPs per call are 4 B H Lq Lk d, so GFLOP/s = flops / mean time:
/// <code>
/// shape          Lq    Lk    d   GFLOP per call
/// Self4096x40   4096  4096   40   42.9
/// Self1024x80   1024  1024   80    5.4
/// Self256x160    256   256  160    0.67
/// Cross4096x77  4096    77   40    0.81
/// </code>
/// Memory is native scratch, not managed (MemoryDiagnoser shows 0 B for all three); per thread it is
/// naive Lq Lk + 64 d floats (Lq rounded up to 32): the whole per-head probability matrix, 64 MiB at Self4096x40;
/// flash (2d + 256) x 32 floats: 42 KiB at d = 40; partial (2d + Lk) x 32 floats: 522 KiB at 4096 keys, 20 KiB
/// at 77. The target: flash at 4096 tokens at least 2x faster than the naive three-pass attention with
/// under 1/10 of its memory. Naive uses the same microkernels, so it isolates the cost of materializing P.
/// </summary>
[MemoryDiagnoser]
public unsafe class AttentionBenchmarks
{
    public enum AttentionShape
    {
        Self4096x40,
        Self1024x80,
        Self256x160,
        Cross4096x77,
    }

    private const int Batch = 2;
    private const int Heads = 8;

    private float* _q;
    private float* _k;
    private float* _v;
    private float* _o;
    private AttentionProblem _problem;
    private delegate*<in AttentionProblem, void> _naive;
    private delegate*<in AttentionProblem, void> _flash;
    private delegate*<in AttentionProblem, void> _partial;

    [ParamsAllValues]
    public AttentionShape Shape { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (int lq, int lk, int d) = Shape switch
        {
            AttentionShape.Self4096x40 => (4096, 4096, 40),
            AttentionShape.Self1024x80 => (1024, 1024, 80),
            AttentionShape.Self256x160 => (256, 256, 160),
            _ => (4096, 77, 40),
        };
        int width = Heads * d;
        var random = new Random(1);
        _q = Random(random, (nint)Batch * lq * width);
        _k = Random(random, (nint)Batch * lk * width);
        _v = Random(random, (nint)Batch * lk * width);
        _o = Random(random, (nint)Batch * lq * width);
        _problem = new AttentionProblem(_q, width, _k, width, _v, width, _o, width, Batch, Heads, lq, lk, d);
        bool wide = Simd.Level == SimdLevel.Vector512;
        _naive = wide ? &AttentionKernels.NaiveAttention_Vector512 : &AttentionKernels.NaiveAttention_Vector256;
        _flash = wide ? &AttentionKernels.FlashAttention_Vector512 : &AttentionKernels.FlashAttention_Vector256;
        _partial = wide
            ? &AttentionKernels.PartialSoftmaxAttention_Vector512
            : &AttentionKernels.PartialSoftmaxAttention_Vector256;
    }

    private static float* Random(Random random, nint count)
    {
        float* data = (float*)NativeMemory.AlignedAlloc((nuint)count * sizeof(float), 64);
        for (nint i = 0; i < count; i++)
        {
            data[i] = random.NextSingle() * 2 - 1;
        }
        return data;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_q);
        NativeMemory.AlignedFree(_k);
        NativeMemory.AlignedFree(_v);
        NativeMemory.AlignedFree(_o);
    }

    /// <summary>Scores matrix, softmax, P V as three passes over the materialized per-head matrix.</summary>
    [Benchmark(Baseline = true)]
    public void NaiveThreePass() => _naive(_problem);

    [Benchmark]
    public void Flash() => _flash(_problem);

    [Benchmark]
    public void PartialSoftmax() => _partial(_problem);
}
