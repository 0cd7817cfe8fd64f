using Sd.Loaders.Lora;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Weights;

/// <summary>
/// A low-rank change to one weight W [out, ...] of a component, merged when W is loaded:
/// W += <see cref="Scale"/> x up [out, rank] x down [rank, prod(W's other dims)], from a LoRA module resolved by
/// <see cref="LoraTargets"/>. The tensors stay in their file until then.
/// </summary>
public sealed class WeightDelta(LoraModule module, SafetensorsFile file, float scale)
{
    public LoraModule Module { get; } = module;

    /// <summary>The LoRA file the module's tensors are read from.</summary>
    public SafetensorsFile File { get; } = file;

    /// <summary>The user's LoRA weight times the module's alpha / rank.</summary>
    public float Scale { get; } = scale;

    public override string ToString() => $"{File.Path}: {Module.Key} x {Scale}";
}
