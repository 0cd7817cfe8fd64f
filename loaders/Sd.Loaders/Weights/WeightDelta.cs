using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Weights;

/// <summary>
/// A low-rank change to one weight W [out, ...] of a component, merged when W is loaded:
/// W += <see cref="Scale"/> x up [out, rank] x down [rank, prod(W's other dims)] (a LoRA module, see
/// <see cref="Lora.LoraTargets"/>). The tensors stay in their file until then.
/// </summary>
public sealed class WeightDelta
{
    public WeightDelta(string key, SafetensorsFile file, TensorInfo down, TensorInfo up, float scale)
    {
        Key = key;
        File = file;
        Down = down;
        Up = up;
        Scale = scale;
    }

    /// <summary>The LoRA module it came from, for messages.</summary>
    public string Key { get; }

    public SafetensorsFile File { get; }

    public TensorInfo Down { get; }

    public TensorInfo Up { get; }

    /// <summary>The user's LoRA weight times the module's alpha / rank.</summary>
    public float Scale { get; }

    public int Rank => (int)Down.Shape[0];

    public override string ToString() => $"{File.Path}: {Key} x {Scale}";
}
