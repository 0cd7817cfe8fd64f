using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;

namespace Sd.Cli.Tests;

/// <summary>A diffusers T2I-Adapter folder with random weights, shaped for the small fixture model (blocks 64, 128, 256; VAE factor 8).</summary>
internal static class SmallAdapter
{
    public static string Write(string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), """
            {"_class_name": "T2IAdapter", "adapter_type": "full_adapter", "channels": [64, 128, 256], "downscale_factor": 8,
             "in_channels": 1, "num_res_blocks": 1}
            """);
        T2IAdapterConfig config = T2IAdapterConfig.Load(Path.Combine(folder, "config.json"));
        RandomModelWriter.Weights(DiffusersLayout.T2IAdapter(config), TensorDType.F32, 5).Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        return folder;
    }
}
