using Sd.Loaders.Lora;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Weights;

/// <summary>
/// A change to one tensor W [out, ...] of a component, merged when W is loaded: W += <see cref="Scale"/> x
/// <see cref="Update"/> (read as [out, prod(W's other dims)]), from a LoRA module resolved by <see cref="LoraTargets"/>;
/// for a DoRA module, W decomposed with its magnitude (<see cref="LoraModule.Magnitude"/>).
/// The tensors stay in their file until then.
/// </summary>
public sealed class WeightDelta(LoraModule module, LoraUpdate update, SafetensorsFile file, float scale, float strength, bool magnitudePerInput)
{
    public LoraModule Module { get; } = module;

    /// <summary>The module's change to this tensor: its weight's, or its bias's.</summary>
    public LoraUpdate Update { get; } = update;

    /// <summary>The LoRA file the module's tensors are read from.</summary>
    public SafetensorsFile File { get; } = file;

    /// <summary>The user's LoRA weight times the module's own scale (alpha / rank) for a weight; the user's weight for a bias.</summary>
    public float Scale { get; } = scale;

    /// <summary>The user's LoRA weight alone (1 as trained).</summary>
    public float Strength { get; } = strength;

    /// <summary>Whether the module's DoRA magnitude is per input channel ([1, in, ...]) rather than per output row.</summary>
    public bool MagnitudePerInput { get; } = magnitudePerInput;

    /// <summary>Whether the module's DoRA magnitude rescales this tensor: its weight's change, not its bias's.</summary>
    public bool Decomposes => Module.Magnitude is not null && Update == Module.Weight;

    public override string ToString() => $"{File.Path}: {Module.Key} x {Scale}";
}
