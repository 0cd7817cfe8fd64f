using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// One fixture UNet case (<c>{model}/ref/unet/{case}</c>): its inputs, diffusers' noise prediction, and a forward
/// pass of any UNet on those inputs, so every way of loading a UNet is checked on the same footing.
/// </summary>
internal sealed class UNetCase : IDisposable
{
    public static readonly string[] Names = ["t999", "t500", "t1", "t761.25_float", "per_sample_t", "nonsquare", "odd_size"];

    private readonly Tensor _sample;
    private readonly float[] _timesteps;
    private readonly Tensor _context;

    private UNetCase(string name, Tensor sample, float[] timesteps, Tensor context, float[] expected)
    {
        Name = name;
        _sample = sample;
        _timesteps = timesteps;
        _context = context;
        Expected = expected;
    }

    public string Name { get; }

    /// <summary>diffusers' noise_pred.npy, NCHW.</summary>
    public float[] Expected { get; }

    public static UNetCase Load(string model, string caseName)
    {
        string dir = Fixtures.Path($"{model}/ref/unet/{caseName}");
        Tensor sample = NpyTensors.ReadNchwAsNhwc(Path.Combine(dir, "sample.npy"));
        NpyArray t = NpyFile.Read(Path.Combine(dir, "timestep.npy"));
        float[] timesteps = t.DType is NpyDType.Float32 ? t.ToFloat32() : Array.ConvertAll(t.ToInt64(), v => (float)v);
        NpyArray contextArray = NpyFile.Read(Path.Combine(dir, "encoder_hidden_states.npy"));
        Tensor context = Tensor.Allocate(contextArray.Shape);
        contextArray.ToFloat32().CopyTo(context.Span);
        float[] expected = NpyFile.Read(Path.Combine(dir, "noise_pred.npy")).ToFloat32();
        return new UNetCase($"{model}/{caseName}", sample, timesteps, context, expected);
    }

    /// <summary>
    /// The UNet's noise prediction for this case, NCHW like <see cref="Expected"/>; an LCM-distilled UNet's given a
    /// timestep condition.
    /// </summary>
    public float[] Run(UNet2DConditionModel unet, float[]? timestepCond = null)
    {
        using Tensor prediction = Tensor.Allocate([_sample.Dim(0), _sample.Dim(1), _sample.Dim(2), unet.Config.OutChannels]);
        unet.Forward(_sample, _timesteps, _context, prediction, timestepCond ?? []);
        return NpyTensors.ToNchw(prediction);
    }

    public void Dispose()
    {
        _sample.Dispose();
        _context.Dispose();
    }
}
