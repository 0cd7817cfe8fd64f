using Sd.Engine.Modules;
using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Lora;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;
using Sd.Loaders.Weights;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// A LoRA on the built-in demo model (no fixtures needed) gives the UNet and text encoder outputs of the same model
/// with the merged weights written into its files, through every kind of layer a LoRA changes: fused q/k/v and
/// cross-attention projections, the 1x1 proj_in, GEGLU's projection, a 3x3 ResNet conv, conv_in, the time
/// embedding's projection, CLIP's attention and MLP. Pipelines take LoRAs at load, merge them at every load
/// (sequential mode), and refuse one made for another model before any request.
/// </summary>
public sealed class LoraModelTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] UNetChanges =
    [
        "down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_k.weight",
        "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_v.weight",
        "down_blocks.2.attentions.0.proj_in.weight",
        "down_blocks.2.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
        "down_blocks.0.resnets.0.conv1.weight",
        "conv_in.weight",
        "mid_block.resnets.0.time_emb_proj.weight",
        "up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight",
    ];

    private static readonly string[] TextChanges =
    [
        "text_model.encoder.layers.0.self_attn.q_proj.weight",
        "text_model.encoder.layers.1.mlp.fc1.weight",
    ];

    private const float Scale = 0.7f;

    private readonly TempDirectory _dir = new();
    private readonly ModelSource _demo = ModelSource.Demo();

    public void Dispose()
    {
        _demo.Dispose();
        _dir.Dispose();
    }

    /// <remarks>
    /// The merged weights differ from the float64 oracle's by float32 rounding (a unit in the last place): nudging the
    /// oracle's changed UNet weights one unit at random moves the demo UNet's output by 4.4e-6 relative L2, hence its
    /// tolerance; the text encoder's outputs agree to 3.5e-7.
    /// </remarks>
    [Theory]
    [InlineData(ModelComponent.Unet, 2e-5)]
    [InlineData(ModelComponent.TextEncoder, 1e-5)]
    public void A_component_with_a_lora_is_the_component_with_merged_weights(ModelComponent component, double tolerance)
    {
        (string lora, Dictionary<string, float[]> merged) = WriteLora(component, component == ModelComponent.Unet ? UNetChanges : TextChanges);
        using LoraFile file = LoraFile.Open(lora);
        WeightSet weights = _demo.Weights(component);
        using SafetensorsFile mergedFile = WithTensors(weights, merged);

        float[] withLora = Run(component, LoraTargets.Apply(weights, component, [(file, Scale)]));
        float[] expected = Run(component, WeightBinderTests.WeightsOf(mergedFile));
        output.WriteLine(Compare.AssertClose(expected, withLora, tolerance, $"{component} + LoRA vs merged weights"));
        Assert.True(Compare.RelativeL2(Run(component, weights), withLora) > 1e-2, "the LoRA changed the output");
    }

    /// <summary>
    /// LyCORIS's types on the demo model, every way a module is loaded: LoHa on a fused q/k/v projection and a 3x3
    /// conv (Tucker), LoKr on a 3x3 conv and a Linear, LoCon's Tucker core, full differences with the bias's (conv_in,
    /// the time embedding's projection: a conv's and a Linear's bias), norm differences (a GroupNorm, CLIP's
    /// LayerNorms). The component built with the LoRA is the component built from its tensors each merged alone
    /// (<see cref="WeightBinder.Load"/>, whose arithmetic LoraMergeTests checks against A1111's), bit for bit: each
    /// tensor gets the same merge wherever the model reads it.
    /// </summary>
    [Theory]
    [InlineData(ModelComponent.Unet)]
    [InlineData(ModelComponent.TextEncoder)]
    public void Lycoris_types_change_a_component_as_its_merged_tensors_do(ModelComponent component)
    {
        WeightSet weights = _demo.Weights(component);
        var writer = new SafetensorsWriter();
        var random = new Random(7);
        void Add(string module, string part, params long[] shape)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            var values = new float[count];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(0.3 * (2 * random.NextDouble() - 1));
            writer.AddFloat32((component == ModelComponent.Unet ? "lora_unet_" : "lora_te_") + module.Replace('.', '_') + "." + part, shape, values);
        }
        long[] Shape(string module) => weights.TryGet(module + ".weight", out TensorEntry e) ? e.Shape : throw new KeyNotFoundException(module);
        void LoHa(string module, bool tucker)
        {
            long[] w = Shape(module);
            for (int f = 1; f <= 2; f++)
            {
                if (tucker)
                {
                    Add(module, $"hada_t{f}", 2, 2, w[2], w[3]);
                    Add(module, $"hada_w{f}_a", 2, w[0]);
                    Add(module, $"hada_w{f}_b", 2, w[1]);
                }
                else
                {
                    Add(module, $"hada_w{f}_a", w[0], 2);
                    Add(module, $"hada_w{f}_b", 2, w[1]);
                }
            }
        }
        void Full(string module, string weight, string bias)
        {
            long[] w = Shape(module);
            Add(module, weight, w);
            Add(module, bias, w[0]);
        }
        List<string> changed;
        if (component == ModelComponent.Unet)
        {
            LoHa("down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_k", tucker: false);
            LoHa("up_blocks.0.resnets.0.conv2", tucker: true);
            long[] conv = Shape("down_blocks.0.resnets.0.conv1"), linear = Shape("down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_out.0");
            Add("down_blocks.0.resnets.0.conv1", "lokr_w1", 2, 2);
            Add("down_blocks.0.resnets.0.conv1", "lokr_w2", conv[0] / 2, conv[1] / 2, 3, 3);
            Add("down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_out.0", "lokr_w1_a", 2, 1);
            Add("down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_out.0", "lokr_w1_b", 1, 4);
            Add("down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_out.0", "lokr_w2_a", linear[0] / 2, 3);
            Add("down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_out.0", "lokr_w2_b", 3, linear[1] / 4);
            writer.AddFloat32("lora_unet_down_blocks_2_attentions_0_transformer_blocks_0_attn2_to_out_0.alpha", [], [1.5f]);
            long[] locon = Shape("down_blocks.1.resnets.0.conv2");
            Add("down_blocks.1.resnets.0.conv2", "lora_up.weight", locon[0], 3, 1, 1);
            Add("down_blocks.1.resnets.0.conv2", "lora_mid.weight", 3, 2, 3, 3);
            Add("down_blocks.1.resnets.0.conv2", "lora_down.weight", 2, locon[1], 1, 1);
            Full("conv_in", "diff", "diff_b");
            Full("mid_block.resnets.0.time_emb_proj", "diff", "diff_b");
            Full("down_blocks.0.resnets.0.norm1", "w_norm", "b_norm");
            changed = ["down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_k.weight", "up_blocks.0.resnets.0.conv2.weight",
                "down_blocks.0.resnets.0.conv1.weight", "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_out.0.weight",
                "down_blocks.1.resnets.0.conv2.weight", "conv_in.weight", "conv_in.bias", "mid_block.resnets.0.time_emb_proj.weight",
                "mid_block.resnets.0.time_emb_proj.bias", "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.0.norm1.bias"];
        }
        else
        {
            LoHa("text_model.encoder.layers.0.mlp.fc1", tucker: false);
            Full("text_model.encoder.layers.1.layer_norm1", "w_norm", "b_norm");
            Full("text_model.final_layer_norm", "w_norm", "b_norm");
            changed = ["text_model.encoder.layers.0.mlp.fc1.weight", "text_model.encoder.layers.1.layer_norm1.weight",
                "text_model.encoder.layers.1.layer_norm1.bias", "text_model.final_layer_norm.weight", "text_model.final_layer_norm.bias"];
        }
        string path = _dir.File($"lycoris-{component}.safetensors");
        writer.Save(path);
        using LoraFile file = LoraFile.Open(path);
        WeightSet withLora = LoraTargets.Apply(weights, component, [(file, Scale)]);
        Assert.Equal(changed.Count, withLora.ChangedWeights.Count);
        var merged = new Dictionary<string, float[]>();
        using (var binder = new WeightBinder(withLora))
        {
            foreach (string name in changed)
            {
                Assert.True(weights.TryGet(name, out TensorEntry entry), name);
                using Tensors.NativeBlock block = binder.Load(name, entry.Shape);
                merged[name] = block.Span.ToArray();
            }
        }
        using SafetensorsFile mergedFile = WithTensors(weights, merged);

        float[] expected = Run(component, WeightBinderTests.WeightsOf(mergedFile));
        float[] actual = Run(component, withLora);
        output.WriteLine(Compare.AssertClose(expected, actual, 0, $"{component} + LyCORIS vs merged tensors"));
        Assert.True(Compare.RelativeL2(Run(component, weights), actual) > 1e-2, "the LoRA changed the output");
    }

    private static readonly GenerateRequest Request = new() { Prompt = "a red cube", Steps = 2, Width = 64, Height = 64, Seed = 5 };

    [Fact]
    public void Pipelines_merge_loras_at_every_load_and_a_weight_of_zero_changes_nothing()
    {
        (string unetLora, _) = WriteLora(ModelComponent.Unet, UNetChanges);
        (string textLora, _) = WriteLora(ModelComponent.TextEncoder, TextChanges);
        LoraSpec[] loras = [new(unetLora, Scale), new(textLora)];
        using var plain = StableDiffusionPipeline.LoadDemo();
        using var resident = StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Loras = loras });
        using var sequential = StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Memory = PipelineMemory.Sequential, Loras = loras });
        using var zero = StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Loras = [new(unetLora, 0f), new(textLora, 0f)] });

        using GenerateResult expected = resident.Generate(Request);
        using GenerateResult first = sequential.Generate(Request);
        using GenerateResult second = sequential.Generate(Request);
        using GenerateResult unchanged = plain.Generate(Request);
        using GenerateResult zeroed = zero.Generate(Request);
        Assert.True(expected.Latents.Span.SequenceEqual(first.Latents.Span), "sequential loads merge as a resident load does");
        Assert.True(expected.Latents.Span.SequenceEqual(second.Latents.Span), "a reload merges once, afresh");
        Assert.True(unchanged.Latents.Span.SequenceEqual(zeroed.Latents.Span), "a LoRA at weight 0 changes no bit");
        Assert.True(Compare.RelativeL2(unchanged.Latents.Span, expected.Latents.Span) > 1e-3);
    }

    /// <summary>
    /// ComfyUI's SD 2.x text encoder (open_clip's clip_h) has 24 layers and its LoRA extraction writes all of them;
    /// SD 2.x's has 23 (it conditions on the penultimate layer), so the last layer's modules change nothing and are
    /// skipped, while the same name under kohya's layout is no such layer, and a model without the others refuses them.
    /// </summary>
    [Fact]
    public void A_comfyui_sd2_lora_skips_the_open_clip_layer_sd2_never_runs()
    {
        ClipTextConfig sd2 = DemoModel.TextEncoder with { NumHiddenLayers = 23 };
        using SafetensorsFile file = SafetensorsFile.InMemory("sd2-text", RandomModelWriter.Weights(DiffusersLayout.ClipText(sd2), TensorDType.F32, 1));
        WeightSet weights = WeightBinderTests.WeightsOf(file);
        const string Fc1 = "text_model.encoder.layers.22.mlp.fc1.weight", Last = "text_model.encoder.layers.23.mlp.fc1.weight";
        long[] shape = weights.Entries.Single(e => e.Name == Fc1).Shape;
        var comfy = new LoraWriter();
        comfy.Add(ModelComponent.TextEncoder, Fc1, shape, rank: 2, alpha: null, seed: 1, key: "text_encoders.clip_h.transformer." + Fc1[..^7]);
        comfy.Add(ModelComponent.TextEncoder, Last, shape, rank: 2, alpha: null, seed: 2, key: "text_encoders.clip_h.transformer." + Last[..^7]);
        using LoraFile lora = LoraFile.Open(comfy.Save(_dir.File("comfy-sd2.safetensors")));
        Assert.Equal([Fc1], LoraTargets.Apply(weights, ModelComponent.TextEncoder, [(lora, 1f)]).ChangedWeights);

        var kohya = new LoraWriter();
        kohya.Add(ModelComponent.TextEncoder, Last, shape, rank: 2, alpha: null, seed: 2);
        using LoraFile named = LoraFile.Open(kohya.Save(_dir.File("kohya-sd2.safetensors")));
        Assert.Contains("changes no weight", Assert.Throws<InvalidFileException>(() => LoraTargets.Apply(weights, ModelComponent.TextEncoder, [(named, 1f)])).Message);
        Assert.Contains("changes no weight", Assert.Throws<InvalidFileException>(
            () => LoraTargets.Apply(_demo.Weights(ModelComponent.TextEncoder), ModelComponent.TextEncoder, [(lora, 1f)])).Message);
    }

    [Fact]
    public void A_pipeline_refuses_a_lora_for_another_model_when_it_loads()
    {
        var writer = new LoraWriter();
        writer.Add(ModelComponent.Unet, "down_blocks.0.attentions.0.proj_in.weight", [320, 320, 1, 1], rank: 4, alpha: null, seed: 1);
        string path = writer.Save(_dir.File("sd15-style.safetensors"));
        var e = Assert.Throws<InvalidFileException>(() => StableDiffusionPipeline.LoadDemo(
            pipelineOptions: new PipelineOptions { Memory = PipelineMemory.Sequential, Loras = [new(path)] }));
        Assert.Contains("LoRA module 'lora_unet_down_blocks_0_attentions_0_proj_in' changes no weight of the model's UNet", e.Message);
        Assert.Throws<FileNotFoundException>(() => StableDiffusionPipeline.LoadDemo(
            pipelineOptions: new PipelineOptions { Loras = [new(_dir.File("absent.safetensors"))] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => StableDiffusionPipeline.LoadDemo(
            pipelineOptions: new PipelineOptions { Loras = [new(path, float.NaN)] }));
    }

    /// <summary>A kohya LoRA changing <paramref name="names"/>, and each changed weight merged at <see cref="Scale"/> by the oracle.</summary>
    private (string Path, Dictionary<string, float[]> Merged) WriteLora(ModelComponent component, string[] names)
    {
        WeightSet weights = _demo.Weights(component);
        var writer = new LoraWriter();
        var merged = new Dictionary<string, float[]>();
        for (int i = 0; i < names.Length; i++)
        {
            Assert.True(weights.TryGet(names[i], out TensorEntry entry), names[i]);
            LoraWriter.Module module = writer.Add(component, names[i], entry.Shape, rank: 2 + i % 3, alpha: i % 2 == 0 ? 1f : null, seed: 100 + i,
                kohya: i % 2 == 0);
            merged[names[i]] = LoraWriter.Merged(entry.ReadFloat32(), entry.Shape, (module, Scale));
        }
        return (writer.Save(_dir.File($"{component}-{Guid.NewGuid():N}.safetensors")), merged);
    }

    /// <summary>The component's tensors with some replaced, as an in-memory file.</summary>
    private static SafetensorsFile WithTensors(WeightSet weights, Dictionary<string, float[]> replaced)
    {
        var writer = new SafetensorsWriter();
        foreach (TensorEntry entry in weights.Entries)
        {
            if (replaced.TryGetValue(entry.Name, out float[]? values))
            {
                writer.AddFloat32(entry.Name, entry.Shape, values);
            }
            else
            {
                writer.Add(entry.Name, entry.DType, entry.Shape, entry.File.GetBytes(entry.Stored));
            }
        }
        return SafetensorsFile.InMemory("merged", writer);
    }

    /// <summary>The demo UNet's prediction for a fixed random input, or the demo text encoder's embeddings of fixed ids.</summary>
    private static float[] Run(ModelComponent component, WeightSet weights) => component == ModelComponent.Unet ? RunUNet(weights) : Encode(weights);

    private static float[] RunUNet(WeightSet weights)
    {
        using var unet = new UNet2DConditionModel(Sd.Loaders.Layout.DemoModel.UNet, weights);
        using Tensor sample = RandomTensors.Uniform([1, 16, 16, 4], 1);
        using Tensor context = RandomTensors.Uniform([1, 77, 64], 2);
        using Tensor prediction = Tensor.Allocate([1, 16, 16, 4]);
        unet.Forward(sample, [500f], context, prediction);
        return prediction.Span.ToArray();
    }

    private static float[] Encode(WeightSet weights)
    {
        using var encoder = new ClipTextModel(Sd.Loaders.Layout.DemoModel.TextEncoder, weights);
        long[] ids = new long[77];
        for (int i = 0; i < ids.Length; i++) ids[i] = i < 9 ? 512 - 37 * i : 513;
        using ClipTextOutput output = encoder.Encode(ids, 1);
        return output.Hidden.Span.ToArray();
    }
}
