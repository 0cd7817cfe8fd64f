using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Lora;

/// <summary>
/// One low-rank module of a LoRA file: the update (alpha / rank) x up x down to one Linear or Conv2d weight of the
/// UNet or the text encoder. down is [rank, in] or [rank, in, kh, kw], up is [out, rank] or [out, rank, 1, 1].
/// </summary>
public sealed class LoraModule
{
    internal LoraModule(string key, ModelComponent component, string target, bool flatTarget, TensorInfo down, TensorInfo up, float alpha)
    {
        Key = key;
        Component = component;
        Target = target;
        FlatTarget = flatTarget;
        Down = down;
        Up = up;
        Alpha = alpha;
    }

    /// <summary>The module's name in the file: "lora_unet_down_blocks_0_attentions_0_proj_in" or "unet.down_blocks.0.attentions.0.proj_in".</summary>
    public string Key { get; }

    /// <summary>The model part it changes: <see cref="ModelComponent.Unet"/> or <see cref="ModelComponent.TextEncoder"/>.</summary>
    public ModelComponent Component { get; }

    /// <summary>
    /// The changed module's diffusers path within the component, dotted ("down_blocks.0.attentions.0.proj_in"), or,
    /// for kohya's names (<see cref="FlatTarget"/>), with every '.' written as '_' ("down_blocks_0_attentions_0_proj_in").
    /// </summary>
    public string Target { get; }

    public bool FlatTarget { get; }

    public TensorInfo Down { get; }

    public TensorInfo Up { get; }

    /// <summary>The module's alpha: the update is scaled by alpha / rank (alpha is the rank when the file has none).</summary>
    public float Alpha { get; }

    public int Rank => (int)Down.Shape[0];

    public override string ToString() => $"{Key} rank {Rank} alpha {Alpha}";
}
