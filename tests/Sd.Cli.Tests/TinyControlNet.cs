using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;

namespace Sd.Cli.Tests;

/// <summary>A diffusers ControlNet folder with random weights, shaped for the tiny fixture model.</summary>
internal static class TinyControlNet
{
    /// <summary>Writes it to <paramref name="folder"/> (stages 8, 16: pictures twice the latents, as the tiny VAE's).</summary>
    public static string Write(string folder)
    {
        Directory.CreateDirectory(folder);
        string json = """
            {"_class_name": "ControlNetModel", "conditioning_embedding_out_channels": [8, 16], "attention_head_dim": 8,
             "block_out_channels": [32, 64], "cross_attention_dim": 32, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
             "layers_per_block": 2}
            """;
        File.WriteAllText(Path.Combine(folder, "config.json"), json);
        ControlNetConfig config = ControlNetConfig.Load(Path.Combine(folder, "config.json"));
        RandomModelWriter.Weights(DiffusersLayout.ControlNet(config), TensorDType.F32, 3).Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        return folder;
    }
}
