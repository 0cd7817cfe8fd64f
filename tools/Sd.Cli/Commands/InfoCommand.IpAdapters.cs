using Sd.Loaders;
using Sd.Loaders.Config;

namespace Sd.Cli.Commands;

// sd info on IP-Adapter files and the CLIP image encoders they take.
public static partial class InfoCommand
{
    /// <summary>An IP-Adapter's image projection, weights, the UNets it fits and the image encoder beside it.</summary>
    public static void WriteIpAdapter(IpAdapterSource source, TextWriter output)
    {
        ImageProjectionShape p = source.Projection;
        output.WriteLine($"ip-adapter:  {source.Path}");
        output.WriteLine("projection:  " + p.Kind switch
        {
            ImageProjectionKind.Resampler => $"Resampler (IP-Adapter Plus): {p.Tokens} tokens from the image encoder's penultimate hidden states ({p.InputWidth} wide); " +
                $"width {p.Width}, {p.Depth} layers of {p.Heads} head{(p.Heads == 1 ? "" : "s")}, feed-forward {p.FeedForward}",
            ImageProjectionKind.Mlp => $"MLP (full-face IP-Adapter): a token per position of the image encoder's penultimate hidden states ({p.InputWidth} wide); hidden {p.Width}",
            _ => $"Linear (plain IP-Adapter): {p.Tokens} tokens from the image encoder's image_embeds ({p.InputWidth} wide)",
        });
        output.WriteLine($"weights:     {Count(source.Weights.ParameterCount)} parameters in {source.Weights.Count} tensors, {DTypeSummary(source.Weights)}, {Mib(source.Weights.StoredBytes)} stored");
        output.WriteLine($"steers:      UNets with {source.LayerWidths.Count} cross-attention layers of widths [{string.Join(", ", source.LayerWidths)}] " +
            $"and cross-attention {p.CrossAttentionDim}{Family(p.CrossAttentionDim)}");
        output.WriteLine(IpAdapterSource.ImageEncoderBeside(source.Path) is { } encoder
            ? $"encoder:     {encoder} (beside it; sd generate --image-encoder DIR takes another)"
            : "encoder:     none beside it (no image_encoder folder): sd generate --image-encoder DIR names the one it was trained with");
        output.WriteLine();
        output.WriteLine($"memory:      {Mib(source.Weights.StoredBytes)} stored, about as much loaded (its GEMMs keep F16/BF16 weights in 16 bits); " +
            "the picture is encoded and projected once per generation");
    }

    /// <summary>A CLIP image encoder's network, weights and what IP-Adapters it serves.</summary>
    public static void WriteImageEncoder(ImageEncoderSource source, TextWriter output)
    {
        ClipVisionConfig c = source.Config;
        output.WriteLine($"image-encoder: {source.Path}");
        output.WriteLine($"network:       CLIP ViT, {c.NumHiddenLayers} layers of width {c.HiddenSize}, {c.NumAttentionHeads} heads, MLP {c.IntermediateSize} {c.HiddenAct}; " +
            $"{c.ImageSize}x{c.ImageSize} pictures in {c.PatchSize}x{c.PatchSize} patches ({c.Positions} positions); projection {c.ProjectionDim}");
        output.WriteLine($"weights:       {Count(source.Weights.ParameterCount)} parameters in {source.Weights.Count} tensors, {DTypeSummary(source.Weights)}, {Mib(source.Weights.StoredBytes)} stored");
        output.WriteLine($"  source:      {source.Weights.Source}");
        output.WriteLine($"serves:        IP-Adapters taking {c.ProjectionDim}-wide image_embeds (plain) or {c.HiddenSize}-wide hidden states (Plus, full-face)");
        output.WriteLine();
        output.WriteLine($"memory:        {Mib(source.Weights.StoredBytes)} stored, about as much loaded (its GEMMs keep F16/BF16 weights in 16 bits); " +
            "it runs once per picture and generation");
    }
}
