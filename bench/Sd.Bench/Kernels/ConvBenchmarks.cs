using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Sd.Kernels.Convolution;
using Sd.Kernels.Gemm;

namespace Sd.Bench.Kernels;

/// <summary>
/// 3x3 convolutions on SD 1.5 shapes (NHWC, batch 2 for the UNet as with classifier-free guidance, batch 1 for
/// the VAE): Winograd F(4x4,3x3) with stored and with streamed (per-call transformed) weights against implicit GEMM
/// (the direct-convolution baseline). Effective GFLOP/s =
/// direct-convolution FLOPs / time, so Winograd can exceed the FMA peak.
/// </summary>
[MemoryDiagnoser]
public unsafe class ConvBenchmarks
{
    private float* _x;
    private float* _y;
    private float* _workspace;
    private PackedWeights? _direct;
    private WinogradWeights? _winograd;

    [Params("2x64x64x320", "2x32x32x640", "2x16x16x1280", "2x8x8x1280", "1x512x512x128", "1x256x256x256")]
    public string Shape { get; set; } = "";

    private ConvShape Conv
    {
        get
        {
            string[] p = Shape.Split('x');
            int c = int.Parse(p[3]);
            return new ConvShape(int.Parse(p[0]), int.Parse(p[1]), int.Parse(p[2]), c, c);
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        ConvShape s = Conv;
        _x = GemmBenchmarks.Filled((long)s.Batch * s.Height * s.Width * s.InChannels);
        _y = GemmBenchmarks.Filled((long)s.Batch * s.Height * s.Width * s.OutChannels);
        float* w = GemmBenchmarks.Filled((long)s.OutChannels * s.InChannels * 9);
        _direct = ImplicitGemmConv.PackWeights(w, s.OutChannels, s.InChannels, 3, 3, GemmKernels.PanelWidth);
        _winograd = WinogradWeights.Create(w, s.OutChannels, s.InChannels, GemmKernels.PanelWidth);
        NativeMemory.AlignedFree(w);
        long workspace = Math.Max(WinogradConv.WorkspaceFloats(s.Batch, s.Height, s.Width, s.InChannels, s.OutChannels),
            WinogradConv.StreamedWorkspaceFloats(s.Batch, s.Height, s.Width, s.InChannels, s.OutChannels));
        _workspace = (float*)NativeMemory.AlignedAlloc((nuint)workspace * sizeof(float), 64);
    }

    [Benchmark(Baseline = true)]
    public void ImplicitGemm()
    {
        ConvShape s = Conv;
        ImplicitGemmConv.Run(GemmKernels.Selected, s, _x, _direct!, null, null, s.OutChannels, _y, s.OutChannels);
    }

    [Benchmark]
    public void Winograd()
    {
        ConvShape s = Conv;
        WinogradConv.Run(GemmKernels.Selected, s.Batch, s.Height, s.Width, _x, _winograd!, null, false, null, s.OutChannels, _y, s.OutChannels, _workspace);
    }

    [Benchmark]
    public void WinogradStreamed()
    {
        ConvShape s = Conv;
        WinogradConv.RunStreamed(GemmKernels.Selected, s.Batch, s.Height, s.Width, _x, _direct!, null, false, null, s.OutChannels, _y, s.OutChannels, _workspace);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_x);
        NativeMemory.AlignedFree(_y);
        NativeMemory.AlignedFree(_workspace);
        _direct?.Dispose();
        _winograd?.Dispose();
    }
}
