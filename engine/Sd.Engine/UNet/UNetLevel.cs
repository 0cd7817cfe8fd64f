using Sd.Engine.Modules;

namespace Sd.Engine.UNet;

/// <summary>The per-block settings diffusers expands from the config (channels, layers, heads, attention).</summary>
/// <param name="Winograd">Whether this resolution level's 3x3 convolutions use Winograd (see UNetOptions).</param>
internal sealed record UNetLevel(int Channels, int Layers, bool HasAttention, int Heads, int ContextDim,
    int TransformerLayers, int Groups, double Eps, bool LinearProjection, bool Winograd)
{
    public ResnetBlock2D CreateResnet(WeightBinder binder, int inChannels, int tembChannels) =>
        new(binder, inChannels, Channels, tembChannels, Groups, Eps, Winograd);

    public Transformer2DModel CreateTransformer(WeightBinder binder) =>
        new(binder, Channels, Heads, ContextDim, TransformerLayers, Groups, LinearProjection);
}
