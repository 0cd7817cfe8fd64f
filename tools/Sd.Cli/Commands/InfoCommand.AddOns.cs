using System.Globalization;
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
    /// A file named as a LoRA or shaped as an embedding that its reader refuses (an SDXL LoRA, OFT, a two-encoder
    /// embedding...) gets that reader's reason instead.
    /// </summary>
    private static bool TryWriteAddOn(string path, TextWriter output)
    {
        if (!File.Exists(path) || !path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || Keys(path) is not { } keys
            || SingleFileKeyMapper.LooksLikeSingleFileCheckpoint(keys))
        {
            return false;
        }
        (LoraFile? lora, Exception? loraRefusal) = Try(() => LoraFile.Open(path));
        if (lora is not null)
        {
            using (lora) WriteLora(lora, output);
            return true;
        }
        (TextualInversion? embedding, Exception? embeddingRefusal) = Try(() => TextualInversionFile.Read(path));
        if (embedding is not null)
        {
            output.WriteLine($"embedding: {path}");
            output.WriteLine($"vectors:   {embedding.Count} of width {embedding.Width}{Family(embedding.Width)}: the text encoder's token width it fits");
            output.WriteLine($"token:     {embedding.Token} (sd generate --embedding FILE[:TOKEN] calls it up by this word unless given another)");
            return true;
        }
        (EsrganFile? upscaler, _) = Try(() => EsrganFile.Open(path));
        if (upscaler is not null)
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
        if (keys.Count <= 2 || keys.Exists(key => key.StartsWith("clip_", StringComparison.Ordinal)))
        {
            throw embeddingRefusal!; // one or two tensors: an embedding, of a kind Sd does not read
        }
        if (keys.Exists(IsLoraName))
        {
            throw loraRefusal!;
        }
        return false;
    }

    private static bool IsLoraName(string key) =>
        key.StartsWith("lora_", StringComparison.Ordinal) || key.StartsWith("lycoris_", StringComparison.Ordinal) || key.Contains(".lora", StringComparison.Ordinal)
        || key.Contains("lora_A", StringComparison.Ordinal) || key.Contains(".alpha", StringComparison.Ordinal);

    /// <summary>What a reader makes of the file, or its refusal (the file may then be something else).</summary>
    private static (T? Value, Exception? Refusal) Try<T>(Func<T> read) where T : class
    {
        try
        {
            return (read(), null);
        }
        catch (Exception e) when (e is IOException or NotSupportedException or ArgumentException)
        {
            return (null, e);
        }
    }

    /// <summary>The file's tensor names; null when it cannot be read as safetensors (the model reader then names the problem).</summary>
    private static List<string>? Keys(string path)
    {
        try
        {
            using SafetensorsFile file = SafetensorsFile.Open(path);
            var keys = new List<string>(file.Tensors.Count);
            foreach (TensorInfo tensor in file.Tensors) keys.Add(tensor.Name);
            return keys;
        }
        catch (IOException)
        {
            return null;
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
        output.WriteLine($"rank:      {(maxRank == 0 ? "none (full matrices or norm differences)" : minRank == maxRank ? $"{maxRank}" : $"{minRank} to {maxRank}")}, alpha " +
            (minAlpha is null ? "none (scale 1)" : minAlpha == maxAlpha ? F(minAlpha.Value) : $"{F(minAlpha.Value)} to {F(maxAlpha!.Value)}"));
        foreach (string key in LoraMetadata)
        {
            if (lora.File.Metadata.TryGetValue(key, out string? value))
            {
                string shown = string.Concat(value.Select(c => char.IsControl(c) ? ' ' : c)); // a hostile file's escapes stay off the terminal
                output.WriteLine($"  {key}: {(shown.Length <= 120 ? shown : shown[..120] + "...")}");
            }
        }
        output.WriteLine("use:       sd generate --lora FILE[:SCALE], or <lora:NAME:SCALE> in the prompt with --lora-dir");
    }
}
