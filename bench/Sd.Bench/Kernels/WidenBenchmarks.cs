using BenchmarkDotNet.Attributes;
using Sd.Kernels.Convert;

namespace Sd.Bench.Kernels;

/// <summary>
/// F16/BF16 -> F32 widening, run once per weight at load. Size: SD 1.5's largest tensor class (a 1280x1280x3x3
/// convolution, 14.7M values). Reports bytes converted per second via the operation count.
/// </summary>
[MemoryDiagnoser]
public unsafe class WidenBenchmarks
{
    private const int Count = 1280 * 1280 * 9;
    private ushort[] _source = [];
    private float[] _destination = [];

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _source = new ushort[Count];
        for (int i = 0; i < Count; i++)
        {
            _source[i] = BitConverter.HalfToUInt16Bits((Half)(random.NextSingle() * 2 - 1));
        }
        _destination = new float[Count];
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Count)]
    public void F16_Scalar()
    {
        fixed (ushort* s = _source)
        fixed (float* d = _destination)
        {
            WidenKernels.F16ToF32_Scalar(s, d, Count);
        }
    }

    [Benchmark(OperationsPerInvoke = Count)]
    public void F16_Vector256()
    {
        fixed (ushort* s = _source)
        fixed (float* d = _destination)
        {
            WidenKernels.F16ToF32_Vector256(s, d, Count);
        }
    }

    [Benchmark(OperationsPerInvoke = Count)]
    public void F16_Vector512()
    {
        fixed (ushort* s = _source)
        fixed (float* d = _destination)
        {
            WidenKernels.F16ToF32_Vector512(s, d, Count);
        }
    }

    [Benchmark(OperationsPerInvoke = Count)]
    public void BF16_Vector512()
    {
        fixed (ushort* s = _source)
        fixed (float* d = _destination)
        {
            WidenKernels.BF16ToF32_Vector512(s, d, Count);
        }
    }
}
