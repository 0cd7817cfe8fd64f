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
}
