using Sd.Engine.Modules;

namespace Sd.Engine.UNet;

/// <summary>The per-block settings diffusers expands from the config (channels, layers, heads, attention).</summary>
internal sealed record UNetLevel(int Channels, int Layers, bool HasAttention, int Heads, int ContextDim,
    int TransformerLayers, int Groups, double Eps, bool LinearProjection)
{
    public Transformer2DModel CreateTransformer(WeightBinder binder) =>
        new(binder, Channels, Heads, ContextDim, TransformerLayers, Groups, LinearProjection);
}
