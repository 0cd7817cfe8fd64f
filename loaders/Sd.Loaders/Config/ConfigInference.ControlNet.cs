using Sd.Loaders.Weights;

namespace Sd.Loaders.Config;

public static partial class ConfigInference
{
    /// <summary>
    /// A ControlNet's config from its tensors (diffusers names), for files that come without a config.json, as
    /// lllyasviel's original-format ones do. The encoder is inferred as a UNet's (heads by the SD family); the
    /// conditioning embedding's widths are the out channels of conv_in and of every second block (each stage is a
    /// 3x3 convolution, then a stride-2 one into the next width). Channel order and global pooling do not show in
    /// the shapes: RGB and no pooling are assumed and reported, which is wrong only for a shuffle ControlNet.
    /// </summary>
    public static ControlNetConfig ControlNet(WeightSet weights, ICollection<InferredSetting>? guesses = null)
    {
        const string component = "controlnet";
        UNetConfig encoder = InferUNet(weights, guesses, component, encoderOnly: true);
        int blocks = CountIndices(weights, "controlnet_cond_embedding.blocks.");
        if (blocks % 2 != 0 || blocks / 2 + 1 > ConfigLimits.MaxBlocks)
        {
            throw new InvalidFileException(weights.Source,
                $"cannot infer the ControlNet's conditioning embedding: {blocks} controlnet_cond_embedding.blocks, expected pairs (a 3x3 convolution, then a stride-2 one) for at most {ConfigLimits.MaxBlocks - 1} stages");
        }
        var widths = new int[blocks / 2 + 1];
        widths[0] = Dim(weights, "controlnet_cond_embedding.conv_in.weight", 0);
        for (int i = 1; i < widths.Length; i++)
        {
            widths[i] = Dim(weights, $"controlnet_cond_embedding.blocks.{2 * i - 1}.weight", 0);
        }
        var config = new ControlNetConfig
        {
            Encoder = encoder,
            ConditioningChannels = Dim(weights, "controlnet_cond_embedding.conv_in.weight", 1),
            ConditioningEmbeddingOutChannels = widths,
        };
        config.Validate(weights.Source);
        guesses?.Add(new(component, "global pooling", "off",
            "as in every ControlNet but shuffle (control_v11e_sd15_shuffle), whose file needs its control_v11e_sd15_shuffle.yaml (global_average_pooling: True) or a config.json (\"global_pool_conditions\": true) beside it"));
        guesses?.Add(new(component, "channel order", "rgb", "as in lllyasviel's ControlNets"));
        return config;
    }
}
