using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Sd.Kernels.Gemm;

namespace Sd.Bench.Kernels;

/// <summary>
/// Packed GEMM on SD 1.5 shapes (M = tokens/pixels, N = output channels, K = input channels): attention and
/// feed-forward projections at 64x64 latents (4096 tokens) and 32x32 (1024 tokens). Threads follow SD_THREADS.
/// GFLOP/s = 2 M N K / time.
/// </summary>
[MemoryDiagnoser]
public unsafe class GemmBenchmarks
{
    private float* _a;
    private float* _c;
    private PackedWeights? _w;

    [Params("4096x320x1280", "4096x1280x320", "1024x640x2560", "4096x320x320", "1024x2560x640", "512x512x512", "8192x2560x320", "2048x5120x640", "512x10240x1280", "512x1280x1280")]
    public string Shape { get; set; } = "";

    private (int M, int N, int K) Dims
    {
        get
        {
            string[] parts = Shape.Split('x');
            return (int.Parse(parts[0]), int.Parse(parts[1]), int.Parse(parts[2]));
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        (int m, int n, int k) = Dims;
        _a = Filled((long)m * k);
        float* w = Filled((long)n * k);
        _w = PackedWeights.Pack(w, n, k, k);
        NativeMemory.AlignedFree(w);
        _c = Filled((long)m * n);
    }

    internal static float* Filled(long count)
    {
        float* p = (float*)NativeMemory.AlignedAlloc((nuint)count * sizeof(float), 64);
        var random = new Random(1);
        for (long i = 0; i < count; i++) p[i] = random.NextSingle() - 0.5f;
        return p;
    }

    [Benchmark]
    public void Gemm()
    {
        (int m, _, int k) = Dims;
        GemmKernels.Multiply(m, _a, k, _w!, _c, _w!.N);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_a);
        NativeMemory.AlignedFree(_c);
        _w?.Dispose();
    }
}
