using System.Globalization;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Embeddings;
using Sd.Loaders.Lora;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Upscalers;

namespace Sd.Cli.Commands;

// sd info on the files that go with a model rather than being one: LoRAs, textual-inversion embeddings and ESRGAN
// upscalers, told apart by which of their readers takes them.
public static partial class InfoCommand
{
    /// <summary>The kohya and ModelSpec metadata keys worth showing for a LoRA, when the file has them.</summary>
    private static readonly string[] LoraMetadata =
    [
        "ss_output_name", "ss_sd_model_name", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
        "modelspec.title", "modelspec.architecture",
    ];

    /// <summary>
    /// Describes <paramref name="path"/> when it is a .safetensors file with no model in it that one of the add-on
    /// readers takes (a LoRA, an embedding, an upscaler); false otherwise, for the model reader to say what it is not.
    /// </summary>
    private static bool TryWriteAddOn(string path, TextWriter output)
    {
        if (!File.Exists(path) || !path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || HoldsModel(path))
        {
            return false;
        }
        if (Try(() => LoraFile.Open(path)) is { Modules.Count: > 0 } lora)
        {
            using (lora) WriteLora(lora, output);
            return true;
        }
        if (Try(() => TextualInversionFile.Read(path)) is { } embedding)
        {
            output.WriteLine($"embedding: {path}");
            output.WriteLine($"vectors:   {embedding.Count} of width {embedding.Width}{Family(embedding.Width)}: the text encoder's token width it fits");
            output.WriteLine($"token:     {embedding.Token} (sd generate --embedding FILE[:TOKEN] calls it up by this word unless given another)");
            return true;
        }
        if (Try(() => EsrganFile.Open(path)) is { } upscaler)
        {
            using (upscaler)
            {
                EsrganConfig c = upscaler.Config;
                output.WriteLine($"upscaler:  {path}");
                output.WriteLine($"network:   {(c.Architecture == EsrganArchitecture.Compact ? "SRVGGNetCompact" : "RRDBNet")}, {c.Features} features, " +
                    $"{c.Blocks} block{(c.Blocks == 1 ? "" : "s")}, {c.InChannels} to {c.OutChannels} channels, {c.Scale}x (sd upscale --upscaler FILE)");
                output.WriteLine($"weights:   {Count(upscaler.Weights.ParameterCount)} parameters, {DTypeSummary(upscaler.Weights)}, {Mib(upscaler.Weights.StoredBytes)} stored");
            }
            return true;
        }
        return false;
    }

    /// <summary>What a reader makes of the file, or null when it refuses it (the file is then something else).</summary>
    private static T? Try<T>(Func<T> read) where T : class
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is IOException or NotSupportedException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Whether the file holds a model's tensors (a single-file checkpoint's prefixes), which the model reader describes.</summary>
    private static bool HoldsModel(string path)
    {
        try
        {
            using SafetensorsFile file = SafetensorsFile.Open(path);
            foreach (TensorInfo tensor in file.Tensors)
            {
                if (tensor.Name.StartsWith("model.diffusion_model.", StringComparison.Ordinal) || tensor.Name.StartsWith("first_stage_model.", StringComparison.Ordinal)
                    || tensor.Name.StartsWith("cond_stage_model.", StringComparison.Ordinal))
                    return true;
            }
            return false;
        }
        catch (IOException)
        {
            return true; // unreadable: the model reader names the problem
        }
    }

    private static void WriteLora(LoraFile lora, TextWriter output)
    {
        var types = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int textEncoder = 0, unet = 0, dora = 0, minRank = int.MaxValue, maxRank = 0;
        float? minAlpha = null, maxAlpha = null;
        foreach (LoraModule module in lora.Modules)
        {
            types[module.Type] = types.GetValueOrDefault(module.Type) + 1;
            if (module.Component == ModelComponent.TextEncoder) textEncoder++; else unet++;
            if (module.Magnitude is not null) dora++;
            if (module.Rank > 0)
            {
                minRank = Math.Min(minRank, module.Rank);
                maxRank = Math.Max(maxRank, module.Rank);
            }
            if (module.Alpha is { } alpha)
            {
                minAlpha = Math.Min(minAlpha ?? alpha, alpha);
                maxAlpha = Math.Max(maxAlpha ?? alpha, alpha);
            }
        }
        output.WriteLine($"lora:      {lora.Path}");
        var kinds = new List<string>();
        foreach ((string type, int count) in types) kinds.Add($"{type} x{count}");
        output.WriteLine($"modules:   {lora.Modules.Count} (text encoder {textEncoder}, UNet {unet}): {string.Join(", ", kinds)}{(dora > 0 ? $", {dora} DoRA" : "")}");
        string F(float v) => v.ToString(CultureInfo.InvariantCulture);
        output.WriteLine($"rank:      {(maxRank == 0 ? "none (full or norm differences)" : minRank == maxRank ? $"{maxRank}" : $"{minRank} to {maxRank}")}, alpha " +
            (minAlpha is null ? "none (scale 1)" : minAlpha == maxAlpha ? F(minAlpha.Value) : $"{F(minAlpha.Value)} to {F(maxAlpha!.Value)}"));
        foreach (string key in LoraMetadata)
        {
            if (lora.File.Metadata.TryGetValue(key, out string? value))
            {
                output.WriteLine($"  {key}: {(value.Length <= 120 ? value : value[..120] + "...")}");
            }
        }
        output.WriteLine("use:       sd generate --lora FILE[:SCALE], or <lora:NAME:SCALE> in the prompt with --lora-dir");
    }
}
