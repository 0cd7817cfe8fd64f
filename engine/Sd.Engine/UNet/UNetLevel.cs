using Sd.Engine.Modules;
using Sd.Loaders.Config;

namespace Sd.Engine.UNet;

/// <summary>The per-block settings diffusers expands from the config (channels, layers, heads, attention).</summary>
/// <param name="Winograd">Whether this resolution level's 3x3 convolutions use Winograd (see UNetOptions).</param>
internal sealed record UNetLevel(int Channels, int Layers, bool HasAttention, int Heads, int ContextDim,
    int TransformerLayers, int Groups, double Eps, bool LinearProjection, bool Winograd)
{
    /// <summary>Down block <paramref name="block"/>'s level, or with <paramref name="down"/> false the up block at that resolution.</summary>
    public static UNetLevel Of(UNetConfig config, int block, bool down, bool winograd)
    {
        string type = down ? config.DownBlockTypes[block] : config.UpBlockTypes[config.BlockOutChannels.Length - 1 - block];
        return new UNetLevel(config.BlockOutChannels[block], config.LayersPerBlock[block], type.StartsWith("CrossAttn", StringComparison.Ordinal),
            config.NumAttentionHeads[block], config.CrossAttentionDim[block], config.TransformerLayersPerBlock[block],
            config.NormNumGroups, config.NormEps, config.UseLinearProjection, winograd);
    }

    public ResnetBlock2D CreateResnet(WeightBinder binder, int inChannels, int tembChannels) =>
        new(binder, inChannels, Channels, tembChannels, Groups, Eps, Winograd);

    public Transformer2DModel CreateTransformer(WeightBinder binder) =>
        new(binder, Channels, Heads, ContextDim, TransformerLayers, Groups, LinearProjection);
}
