using BenchmarkDotNet.Attributes;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;

namespace Sd.Bench.Engine;

/// <summary>
/// One UNet call (classifier-free guidance batch 2) on the built-in demo model, which needs no files: the point is
/// [MemoryDiagnoser]'s managed allocation per step (the engine plans its activations once per shape, so a step
/// should allocate nothing), not the time of this toy network.
/// </summary>
[MemoryDiagnoser]
public class UNetStepBenchmarks
{
    private ModelSource? _model;
    private UNet2DConditionModel? _unet;
    private Tensor? _sample;
    private Tensor? _context;
    private Tensor? _output;
    private readonly float[] _timestep = [999f];

    [GlobalSetup]
    public void Setup()
    {
        _model = ModelSource.Demo();
        _unet = new UNet2DConditionModel(_model.UNet!, _model.Weights(ModelComponent.Unet));
        _sample = Filled([2, 16, 16, _unet.Config.InChannels]);
        _context = Filled([2, 77, _unet.Config.CrossAttentionDim[0]]);
        _output = Tensor.Allocate([2, 16, 16, _unet.Config.OutChannels]);
    }

    private static Tensor Filled(int[] shape)
    {
        Tensor tensor = Tensor.Allocate(shape);
        var random = new Random(1);
        Span<float> span = tensor.Span;
        for (int i = 0; i < span.Length; i++) span[i] = random.NextSingle() - 0.5f;
        return tensor;
    }

    [Benchmark]
    public void Step() => _unet!.Forward(_sample!, _timestep, _context!, _output!);

    [GlobalCleanup]
    public void Cleanup()
    {
        _output?.Dispose();
        _context?.Dispose();
        _sample?.Dispose();
        _unet?.Dispose();
        _model?.Dispose();
    }
}
