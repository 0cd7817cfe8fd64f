using System.Text.Json;
using System.Text.RegularExpressions;
using Sd.Loaders.Checkpoints;

namespace Sd.Loaders.Lora;

/// <summary>
/// The PEFT LoraConfig diffusers saves beside a LoRA's tensors (safetensors metadata "lora_adapter_metadata", one
/// JSON object of "unet.lora_alpha", "unet.alpha_pattern", "unet.use_rslora", "text_encoder...."): the alpha of
/// the modules that store none, since PEFT-layout files carry no ".alpha" tensors, and whether they are DoRA modules
/// ("use_dora"). diffusers builds the LoraConfig from it, so a component with metadata but no lora_alpha gets PEFT's
/// default of 8.
/// Reference: diffusers loaders/lora_base.py (LORA_ADAPTER_METADATA_KEY), peft LoraConfig, LoraModel._create_and_replace.
/// </summary>
internal sealed class PeftAdapterMetadata
{
    public const string MetadataKey = "lora_adapter_metadata";

    private const float PeftDefaultAlpha = 8;

    /// <summary>Bounds on alpha_pattern, so a file cannot make Sd build and try millions of expressions.</summary>
    private const int MaxPatterns = 1024, MaxPatternLength = 1024;

    private sealed record Component(float Alpha, List<(Regex Pattern, float Alpha)> AlphaPattern, bool RankStabilized, bool Dora);

    private readonly Dictionary<ModelComponent, Component> _components = [];
    private readonly string _path;

    private PeftAdapterMetadata(string path) => _path = path;

    /// <summary>The file's metadata, or null when it has none.</summary>
    public static PeftAdapterMetadata? Read(string path, IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(MetadataKey, out string? json))
        {
            return null;
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new JsonException("expected a JSON object");
            }
            var read = new PeftAdapterMetadata(path);
            read.Add(document.RootElement, "unet.", ModelComponent.Unet);
            read.Add(document.RootElement, "text_encoder.", ModelComponent.TextEncoder);
            return read;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidFileException(path, $"metadata '{MetadataKey}' is no LoRA config Sd reads: {e.Message}");
        }
    }

    /// <summary>
    /// The alpha PEFT gives <paramref name="module"/> (its dotted path in the component) and how it scales, or null
    /// without metadata for the component.
    /// </summary>
    public (float Alpha, LoraAlphaRule Rule)? AlphaOf(ModelComponent component, string module)
    {
        if (!_components.TryGetValue(component, out Component? config))
        {
            return null;
        }
        LoraAlphaRule rule = config.RankStabilized ? LoraAlphaRule.PeftRankStabilized : LoraAlphaRule.Peft;
        foreach ((Regex pattern, float alpha) in config.AlphaPattern)
        {
            try
            {
                if (pattern.IsMatch(module))
                {
                    return (alpha, rule);
                }
            }
            catch (RegexMatchTimeoutException)
            {
                throw new InvalidFileException(_path, $"metadata '{MetadataKey}': the alpha_pattern key '{pattern}' takes too long to match '{module}'");
            }
        }
        return (config.Alpha, rule);
    }

    /// <summary>Whether the config makes <paramref name="component"/>'s modules DoRA modules (each then stores its magnitude); null without metadata for it.</summary>
    public bool? UsesDora(ModelComponent component) => _components.TryGetValue(component, out Component? config) ? config.Dora : null;

    private void Add(JsonElement root, string prefix, ModelComponent component)
    {
        bool any = false;
        float alpha = PeftDefaultAlpha;
        bool rankStabilized = false, dora = false;
        var patterns = new List<(Regex, float)>();
        foreach (JsonProperty property in root.EnumerateObject())
        {
            if (!property.Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }
            any = true;
            switch (property.Name[prefix.Length..])
            {
                case "lora_alpha":
                    alpha = Finite(property);
                    break;
                case "use_rslora":
                    rankStabilized = property.Value.GetBoolean();
                    break;
                case "use_dora":
                    dora = property.Value.GetBoolean();
                    break;
                case "alpha_pattern":
                    foreach (JsonProperty entry in property.Value.EnumerateObject())
                    {
                        if (patterns.Count == MaxPatterns || entry.Name.Length > MaxPatternLength)
                        {
                            throw new FormatException($"'{property.Name}' holds more than {MaxPatterns} keys or one longer than {MaxPatternLength} characters");
                        }
                        // PEFT: re.match(rf"(.*\.)?({key})$", module), the first key that matches (diffusers writes them sorted).
                        patterns.Add((new Regex($@"\A(?:(.*\.)?({entry.Name})$)", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)), Finite(entry)));
                    }
                    break;
            }
        }
        if (any)
        {
            _components.Add(component, new Component(alpha, patterns, rankStabilized, dora));
        }
    }

    private static float Finite(JsonProperty property)
    {
        float value = property.Value.GetSingle();
        return float.IsFinite(value) ? value : throw new FormatException($"'{property.Name}' is {value}; expected a finite number");
    }
}
