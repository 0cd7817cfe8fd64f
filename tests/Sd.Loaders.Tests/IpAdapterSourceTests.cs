using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// IP-Adapter files in h94's layout and CLIP image encoder folders, built by hand: what is read from them, the variants
/// refused by name, and files that lie (shapes that disagree, layers missing or extra, a pickle).
/// </summary>
public sealed class IpAdapterSourceTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Writes <paramref name="layout"/> with zero weights, after <paramref name="edit"/> changes it.</summary>
    private string Write(List<ParameterSpec> layout, Action<List<ParameterSpec>>? edit = null, string name = "ip.safetensors")
    {
        edit?.Invoke(layout);
        var writer = new SafetensorsWriter();
        foreach (ParameterSpec p in layout) writer.AddFloat32(p.Name, p.Shape, new float[p.ElementCount]);
        string path = _dir.File(name);
        writer.Save(path);
        return path;
    }

    private static List<ParameterSpec> Small() => DiffusersLayout.IpAdapter(ImageProjectionShape.Linear(24, 16, 4), [8, 8, 12]);

    private static readonly ImageProjectionShape SmallResampler = ImageProjectionShape.Resampler(20, 16, 24, 5, 3, 2, 40);

    private static List<ParameterSpec> Plus() => DiffusersLayout.IpAdapter(SmallResampler, [8, 8, 12]);

    [Fact]
    public void Reads_the_projection_and_each_layer_width()
    {
        using IpAdapterSource source = IpAdapterSource.Open(Write(Small()));
        Assert.Equal(ImageProjectionShape.Linear(24, 16, 4), source.Projection);
        Assert.False(source.Projection.TakesHiddenStates);
        Assert.Equal([8, 8, 12], source.LayerWidths);
        Assert.True(IpAdapterSource.IsIpAdapter(source.Path));
        Assert.Null(IpAdapterSource.ImageEncoderBeside(source.Path));
        Directory.CreateDirectory(_dir.File("image_encoder"));
        Assert.Equal(_dir.File("image_encoder"), IpAdapterSource.ImageEncoderBeside(source.Path));
    }

    [Fact]
    public void Sd15_has_sixteen_cross_attention_layers_in_processor_order()
    {
        Assert.Equal([320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320, 1280], DiffusersLayout.CrossAttentionWidths(Sd15.UNet));
        // h94's ip-adapter_sd15 (44.6 MB in F16), ip-adapter-plus_sd15 (98.2 MB) and ip-adapter-full-face_sd15 (43.6 MB).
        Assert.Equal(22_319_616, Sd15.IpAdapter(ImageProjectionKind.Linear).Sum(p => p.ElementCount));
        Assert.Equal(49_087_488, Sd15.IpAdapter(ImageProjectionKind.Resampler).Sum(p => p.ElementCount));
        Assert.Equal(21_794_304, Sd15.IpAdapter(ImageProjectionKind.Mlp).Sum(p => p.ElementCount));
    }

    [Fact]
    public void Plus_and_full_face_projections_are_read_from_their_tensors()
    {
        using (IpAdapterSource plus = IpAdapterSource.Open(Write(Plus(), null, "plus.safetensors")))
        {
            Assert.Equal(SmallResampler, plus.Projection);
            Assert.True(plus.Projection.TakesHiddenStates);
            Assert.Equal([8, 8, 12], plus.LayerWidths);
        }
        ImageProjectionShape mlp = ImageProjectionShape.Mlp(20, 16, 30);
        using IpAdapterSource face = IpAdapterSource.Open(Write(DiffusersLayout.IpAdapter(mlp, [8, 8, 12]), null, "face.safetensors"));
        Assert.Equal(mlp, face.Projection);
        Assert.Equal(0, face.Projection.Tokens);
    }

    [Fact]
    public void Face_id_files_are_refused_by_name()
    {
        string faceId = Write(Small(), l => l.Add(new("ip_adapter.1.to_q_lora.down.weight", [4, 8])), "faceid.safetensors");
        Assert.Contains("FaceID", Assert.Throws<NotSupportedException>(() => IpAdapterSource.Open(faceId)).Message);
    }

    public static readonly TheoryData<string, string> ResamplerLies = new()
    {
        { "missing", "missing tensor 'image_proj.layers.1.1.3.weight'" },
        { "heads", "'image_proj.layers.0.0.to_q.weight' is [100, 24]; expected [heads x 64, width]" },
        { "gap", "holds 29 image_proj.* tensors where its Resampler image projection has 18" },
        { "kv", "tensor 'image_proj.layers.2.0.to_kv.weight' has shape [128, 24], expected [256, 24]" },
        { "latents", "'image_proj.latents' is [5, 24]; expected a rank-3 tensor" },
    };

    [Theory]
    [MemberData(nameof(ResamplerLies))]
    public void Resamplers_that_lie_are_refused_naming_the_tensor(string lie, string expected)
    {
        string path = Write(Plus(), layout =>
        {
            int Index(string name) => layout.FindIndex(p => p.Name == name);
            switch (lie)
            {
                case "missing": layout.RemoveAt(Index("image_proj.layers.1.1.3.weight")); break;
                case "heads": layout[Index("image_proj.layers.0.0.to_q.weight")] = new("image_proj.layers.0.0.to_q.weight", [100, 24]); break;
                case "gap": layout.RemoveAll(p => p.Name.StartsWith("image_proj.layers.1.", StringComparison.Ordinal)); break;
                case "kv": layout[Index("image_proj.layers.2.0.to_kv.weight")] = new("image_proj.layers.2.0.to_kv.weight", [128, 24]); break;
                case "latents": layout[Index("image_proj.latents")] = new("image_proj.latents", [5, 24]); break;
            }
        });
        Assert.Contains(expected, Assert.Throws<InvalidFileException>(() => IpAdapterSource.Open(path)).Message);
    }

    public static readonly TheoryData<string, string> Lies = new()
    {
        { "no-norm", "image_proj.norm.weight" },
        { "v-shape", "tensor 'ip_adapter.3.to_v_ip.weight' has shape [8, 17], expected [8, 16]" },
        { "gap", "holds 4 ip_adapter.* tensors where its 1 layers" },
        { "stranger", "'unet.extra' is neither" },
        { "proj-rows", "image_proj.proj.weight is [63, 24]" },
        { "k-width", "'ip_adapter.1.to_k_ip.weight' is [8, 15]" },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void Files_that_lie_are_refused_naming_the_tensor(string lie, string expected)
    {
        string path = Write(Small(), layout =>
        {
            int Index(string name) => layout.FindIndex(p => p.Name == name);
            switch (lie)
            {
                case "no-norm": layout.RemoveAt(Index("image_proj.norm.weight")); break;
                case "v-shape": layout[Index("ip_adapter.3.to_v_ip.weight")] = new("ip_adapter.3.to_v_ip.weight", [8, 17]); break;
                case "gap": layout.RemoveAll(p => p.Name.StartsWith("ip_adapter.3.", StringComparison.Ordinal)); break;
                case "stranger": layout.Add(new("unet.extra", [2])); break;
                case "proj-rows": layout[Index("image_proj.proj.weight")] = new("image_proj.proj.weight", [63, 24]); break;
                case "k-width": layout[Index("ip_adapter.1.to_k_ip.weight")] = new("ip_adapter.1.to_k_ip.weight", [8, 15]); break;
            }
        });
        Assert.Contains(expected, Assert.Throws<InvalidFileException>(() => IpAdapterSource.Open(path)).Message);
        Assert.False(IpAdapterSource.IsIpAdapter(_dir.File("missing.safetensors")));
    }

    [Fact]
    public void Folders_and_pickles_are_refused()
    {
        Assert.Contains("is a folder", Assert.Throws<InvalidFileException>(() => IpAdapterSource.Open(_dir.Path)).Message);
        string bin = _dir.File("ip-adapter_sd15.bin");
        File.WriteAllBytes(bin, [0x80, 0x02]);
        Assert.Throws<UnsafeFormatException>(() => IpAdapterSource.Open(bin));
    }

    private const string EncoderJson = """
        {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "image_size": 28, "patch_size": 14, "projection_dim": 24, "hidden_act": "gelu"}
        """;

    [Fact]
    public void An_image_encoder_folder_must_fit_its_config()
    {
        string folder = _dir.File("image_encoder");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), EncoderJson);
        ClipVisionConfig config = ClipVisionConfig.Load(Path.Combine(folder, "config.json"));
        Assert.Equal(5, config.Positions);
        Write(DiffusersLayout.ClipVision(config), null, "image_encoder/model.safetensors");
        using (ImageEncoderSource source = ImageEncoderSource.Open(folder))
        {
            Assert.Equal(24, source.Config.ProjectionDim);
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), EncoderJson.Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", StringComparison.Ordinal));
        Assert.Contains("does not fit the checkpoint's tensors", Assert.Throws<InvalidFileException>(() => ImageEncoderSource.Open(folder)).Message);

        File.Delete(Path.Combine(folder, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(folder, "pytorch_model.bin"), [0x80, 0x02]);
        Assert.Throws<UnsafeFormatException>(() => ImageEncoderSource.Open(folder));
    }

    [Fact]
    public void Image_encoder_configs_are_checked_and_a_full_clip_config_is_read()
    {
        static string Error(string json) => Assert.Throws<InvalidFileException>(() => ClipVisionConfig.From(JsonConfig.Parse("config.json", System.Text.Encoding.UTF8.GetBytes(json)))).Message;
        Assert.Contains("image_size 28 is not divisible by patch_size 8", Error(EncoderJson.Replace("\"patch_size\": 14", "\"patch_size\": 8", StringComparison.Ordinal)));
        Assert.Contains("num_channels is 4", Error(EncoderJson.Replace("{", "{\"num_channels\": 4, ", StringComparison.Ordinal)));
        Assert.Contains("hidden_act 'relu'", Error(EncoderJson.Replace("\"gelu\"", "\"relu\"", StringComparison.Ordinal)));
        Assert.Contains("model_type is 'clip_text_model'", Error("""{"model_type": "clip_text_model"}"""));
        Assert.Contains("'patch_size' must be in [1, 28]", Error(EncoderJson.Replace("\"patch_size\": 14", "\"patch_size\": 56", StringComparison.Ordinal)));
        ClipVisionConfig full = ClipVisionConfig.From(JsonConfig.Parse("config.json", System.Text.Encoding.UTF8.GetBytes(
            """{"model_type": "clip", "projection_dim": 1024, "vision_config": {"hidden_size": 1280, "num_attention_heads": 16, "patch_size": 14}}""")));
        Assert.Equal((1280, 14, 1024), (full.HiddenSize, full.PatchSize, full.ProjectionDim));
    }
}
