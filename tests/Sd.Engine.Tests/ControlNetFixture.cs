using System.Text.Json;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>The ControlNet of Data/controlnet-reference.py as a diffusers folder: the tiny fixture UNet's encoder and the random conditioning layers.</summary>
internal static class ControlNetFixture
{
    public static string CaseFolder(string caseName) => Path.Combine(Fixtures.BinariesFolder, "Data", "controlnet", caseName);

    /// <summary>A diffusers ControlNet folder for a case: its config, the fixture UNet's encoder and the extra tensors.</summary>
    public static string Write(TempDirectory dir, string caseName)
    {
        string folder = dir.File($"controlnet-{caseName}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(CaseFolder(caseName), "config.json"), Path.Combine(folder, "config.json"));
        var writer = new SafetensorsWriter();
        using SafetensorsFile unet = SafetensorsFile.Open(Fixtures.Path("tiny/model/unet/diffusion_pytorch_model.safetensors"));
        foreach (TensorInfo tensor in unet.Tensors)
        {
            if (tensor.Name.StartsWith("conv_in.", StringComparison.Ordinal) || tensor.Name.StartsWith("time_embedding.", StringComparison.Ordinal)
                || tensor.Name.StartsWith("down_blocks.", StringComparison.Ordinal) || tensor.Name.StartsWith("mid_block.", StringComparison.Ordinal))
            {
                writer.Add(tensor.Name, tensor.DType, tensor.Shape, unet.GetBytes(tensor));
            }
        }
        using SafetensorsFile extra = SafetensorsFile.Open(Path.Combine(Fixtures.BinariesFolder, "Data", "controlnet", "extra.safetensors"));
        foreach (TensorInfo tensor in extra.Tensors)
        {
            writer.Add(tensor.Name, tensor.DType, tensor.Shape, extra.GetBytes(tensor));
        }
        writer.Save(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        return folder;
    }

    /// <summary>
    /// The same ControlNet as an original-format file (lllyasviel's cldm names), from the names in
    /// Data/controlnet/original-keys.json (made by controlnet-original-keys.py, independently of Sd's mapping): under
    /// "control_model." with some of a whole ControlLDM's SD tensors beside them, or bare as ControlNet 1.1 stores them.
    /// The file is alone in a new folder, so it has no config.json.
    /// </summary>
    public static string WriteOriginal(TempDirectory dir, string diffusersFolder, bool prefixed)
    {
        string folder = dir.File($"original-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        var originalNames = new Dictionary<string, string>(StringComparer.Ordinal);
        using (JsonDocument keys = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.BinariesFolder, "Data", "controlnet", "original-keys.json"))))
        {
            foreach (JsonProperty key in keys.RootElement.EnumerateObject())
            {
                originalNames.Add(key.Value.GetString()!, prefixed ? key.Name : key.Name["control_model.".Length..]);
            }
        }
        var writer = new SafetensorsWriter();
        using (SafetensorsFile diffusers = SafetensorsFile.Open(Path.Combine(diffusersFolder, "diffusion_pytorch_model.safetensors")))
        {
            Assert.Equal(originalNames.Count, diffusers.Tensors.Count);
            foreach (TensorInfo tensor in diffusers.Tensors)
            {
                writer.Add(originalNames[tensor.Name], tensor.DType, tensor.Shape, diffusers.GetBytes(tensor));
            }
        }
        if (prefixed)
        {
            writer.AddFloat32("model.diffusion_model.input_blocks.0.0.bias", [32], new float[32]);
            writer.AddFloat32("first_stage_model.decoder.conv_out.bias", [3], new float[3]);
            writer.AddFloat32("cond_stage_model.transformer.text_model.final_layer_norm.bias", [32], new float[32]);
        }
        string path = Path.Combine(folder, prefixed ? "control_sd15_tiny.safetensors" : "control_v11p_sd15_tiny.safetensors");
        writer.Save(path);
        return path;
    }
}
