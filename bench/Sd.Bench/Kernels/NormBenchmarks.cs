using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Normalization;

namespace Sd.Bench.Kernels;

/// <summary>
/// GroupNorm+SiLU on SD 1.5 shapes (UNet 64x64x320 at batch 2 for classifier-free guidance, UNet 32x32x640, the VAE
/// decoder's last 512x512x128) and LayerNorm on the UNet's 4096x320 transformer rows. OperationsPerInvoke is the
/// element count, so the reported time is per float; GB/s = bytes per element / ns: GroupNorm moves 12 B per element
/// (statistics read, normalize read + write), LayerNorm 8 B (its second and third reads of a row hit L1).
/// Buffers are 64-byte aligned native memory like the engine's tensors.
/// </summary>
[MemoryDiagnoser]
public unsafe class NormBenchmarks
{
    private const int Groups = 32;
    private const int Unet64 = 2 * 64 * 64 * 320;
    private const int Unet32 = 32 * 32 * 640;
    private const int Vae512 = 512 * 512 * 128;
    private const int LayerRows = 4096;
    private const int LayerChannels = 320;
    private const int LayerCount = LayerRows * LayerChannels;

    private float* _src;
    private float* _dst;
    private float* _gamma;
    private float* _beta;

    [GlobalSetup]
    public void Setup()
    {
        _src = Allocate(Vae512);
        _dst = Allocate(Vae512);
        _gamma = Allocate(1280);
        _beta = Allocate(1280);
        var random = new Random(1);
        for (int i = 0; i < Vae512; i++)
        {
            _src[i] = random.NextSingle() * 4 - 2;
        }
        for (int i = 0; i < 1280; i++)
        {
            _gamma[i] = 1 + (random.NextSingle() - 0.5f) * 0.2f;
            _beta[i] = (random.NextSingle() - 0.5f) * 0.2f;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_src);
        NativeMemory.AlignedFree(_dst);
        NativeMemory.AlignedFree(_gamma);
        NativeMemory.AlignedFree(_beta);
    }

    private static float* Allocate(int count) => (float*)NativeMemory.AlignedAlloc((nuint)count * sizeof(float), 64);

    [Benchmark(OperationsPerInvoke = Unet64)]
    public void GroupNormSilu_64x64x320_N2() =>
        GroupNorm.Apply(_src, _dst, 2, 64 * 64, 320, Groups, 1e-5f, _gamma, _beta, Activation.Silu);

    /// <summary>The same shape without the activation: the memory-bound floor the fused SiLU adds to.</summary>
    [Benchmark(OperationsPerInvoke = Unet64)]
    public void GroupNorm_64x64x320_N2() =>
        GroupNorm.Apply(_src, _dst, 2, 64 * 64, 320, Groups, 1e-5f, _gamma, _beta, Activation.None);

    [Benchmark(OperationsPerInvoke = Unet64)]
    public void GroupNormSilu_64x64x320_N2_Vector256() =>
        GroupNormKernels.GroupNorm_Vector256(_src, _dst, 2, 64 * 64, 320, Groups, 1e-5f, _gamma, _beta, Activation.Silu);

    [Benchmark(OperationsPerInvoke = Unet32)]
    public void GroupNormSilu_32x32x640() =>
        GroupNorm.Apply(_src, _dst, 1, 32 * 32, 640, Groups, 1e-5f, _gamma, _beta, Activation.Silu);

    [Benchmark(OperationsPerInvoke = Vae512)]
    public void GroupNormSilu_512x512x128() =>
        GroupNorm.Apply(_src, _dst, 1, 512 * 512, 128, Groups, 1e-6f, _gamma, _beta, Activation.Silu);

    /// <summary>In place, as the VAE runs it (dst = src).</summary>
    [Benchmark(OperationsPerInvoke = Vae512)]
    public void GroupNormSilu_512x512x128_InPlace() =>
        GroupNorm.Apply(_dst, _dst, 1, 512 * 512, 128, Groups, 1e-6f, _gamma, _beta, Activation.Silu);

    [Benchmark(OperationsPerInvoke = LayerCount)]
    public void LayerNorm_4096x320() =>
        LayerNorm.Apply(_src, _dst, LayerRows, LayerChannels, 1e-5f, _gamma, _beta);
}
