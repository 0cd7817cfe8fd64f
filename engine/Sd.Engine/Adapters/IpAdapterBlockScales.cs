using System.Globalization;
using System.Text.Json;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;

namespace Sd.Engine.Adapters;

/// <summary>
/// An IP-Adapter's scale per UNet attention block, as diffusers' set_ip_adapter_scale takes it in a dict (InstantStyle's
/// style and layout blocks): <c>{"down": {"block_2": [0.0, 1.0]}, "up": {"block_0": [0.0, 1.0, 0.0]}, "mid": 0.5}</c>.
/// "down" and "up" hold a number for all their blocks with attentions, or per "block_N" (N as in down_blocks.N /
/// up_blocks.N) a number for all its transformer models or a list of one per model (attentions.0, .1...); "mid" a
/// number. Whatever is not named gets 0, as in diffusers. Unlike diffusers, which skips them, a block that does not exist
/// or has no attentions is refused, as is any other key.
/// Reference: diffusers 0.27 set_ip_adapter_scale with _maybe_expand_lora_scales (default_scale 0).
/// </summary>
public sealed class IpAdapterBlockScales
{
    private readonly Part _down;
    private readonly Part _up;
    private readonly float _mid;

    /// <summary>"down" or "up": one scale for every block, or per block index a scale per transformer model (one: all of them).</summary>
    private sealed record Part(float All, Dictionary<int, float[]>? Blocks);

    private IpAdapterBlockScales(Part down, Part up, float mid, string json)
    {
        _down = down;
        _up = up;
        _mid = mid;
        Json = json;
    }

    /// <summary>The scales as compact JSON, in diffusers' dict form.</summary>
    public string Json { get; }

    public override string ToString() => Json;

    /// <summary>Reads diffusers' dict as JSON; throws <see cref="ArgumentException"/> naming what is not in its form.</summary>
    public static IpAdapterBlockScales Parse(string json)
    {
        ArgumentException.ThrowIfNullOrEmpty(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"IP-Adapter block scales are not JSON: {e.Message}", nameof(json), e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ArgumentException("IP-Adapter block scales must be a JSON object such as {\"up\": {\"block_0\": [0.0, 1.0, 0.0]}}", nameof(json));
            }
            Part down = new(0, null), up = new(0, null);
            float mid = 0;
            foreach (JsonProperty part in root.EnumerateObject())
            {
                switch (part.Name)
                {
                    case "down": down = ReadPart("down", part.Value); break;
                    case "up": up = ReadPart("up", part.Value); break;
                    case "mid": mid = ReadMid(part.Value); break;
                    default: throw new ArgumentException($"IP-Adapter block scales: '{part.Name}' is none of down, up, mid", nameof(json));
                }
            }
            return new IpAdapterBlockScales(down, up, mid, Compact(root));
        }
    }

    private static string Compact(JsonElement root)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            root.WriteTo(writer);
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static Part ReadPart(string name, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Number)
        {
            return new Part(Number($"'{name}'", value), null);
        }
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException($"IP-Adapter block scales: '{name}' must be a number or an object of block_N entries, got {value.ValueKind}");
        }
        var blocks = new Dictionary<int, float[]>();
        foreach (JsonProperty block in value.EnumerateObject())
        {
            string where = $"'{name}.{block.Name}'";
            if (!block.Name.StartsWith("block_", StringComparison.Ordinal)
                || !int.TryParse(block.Name.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out int index) || index > ConfigLimits.MaxLayers)
            {
                throw new ArgumentException($"IP-Adapter block scales: {where} is not block_N");
            }
            float[] scales = block.Value.ValueKind == JsonValueKind.Array ? ReadList(where, block.Value) : [Number(where, block.Value)];
            if (!blocks.TryAdd(index, scales))
            {
                throw new ArgumentException($"IP-Adapter block scales: {where} is given twice");
            }
        }
        return new Part(0, blocks);
    }

    private static float ReadMid(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            return Number("'mid'", value);
        }
        float[] list = ReadList("'mid'", value);
        return list.Length == 1 ? list[0] : throw new ArgumentException($"IP-Adapter block scales: 'mid' has {list.Length} scales; the mid block has one transformer model");
    }

    private static float[] ReadList(string where, JsonElement value)
    {
        int count = value.GetArrayLength();
        if (count is < 1 or > ConfigLimits.MaxLayers)
        {
            throw new ArgumentException($"IP-Adapter block scales: {where} must list 1 to {ConfigLimits.MaxLayers} scales, got {count}");
        }
        var list = new float[count];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray()) list[i++] = Number(where, item);
        return list;
    }

    private static float Number(string where, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetSingle(out float number) && float.IsFinite(number) ? number
            : throw new ArgumentException($"IP-Adapter block scales: {where} must hold finite numbers, got {value.GetRawText()}");

    /// <summary>
    /// The scale of each cross-attention layer of a UNet of <paramref name="config"/>, in diffusers' processor order
    /// (<see cref="DiffusersLayout.CrossAttentionLayers"/>); throws <see cref="ArgumentException"/> for a block the UNet
    /// does not have with attentions, or a list whose length is not its transformer models'.
    /// </summary>
    public float[] Expand(UNetConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        List<CrossAttentionLayer> layers = DiffusersLayout.CrossAttentionLayers(config);
        CheckBlocks("down", _down, layers);
        CheckBlocks("up", _up, layers);
        var scales = new float[layers.Count];
        for (int l = 0; l < scales.Length; l++)
        {
            CrossAttentionLayer layer = layers[l];
            scales[l] = layer.Part == "mid" ? _mid : ScaleOf(layer.Part == "down" ? _down : _up, layer.Block, layer.Model);
        }
        return scales;
    }

    private static float ScaleOf(Part part, int block, int model) =>
        part.Blocks is null ? part.All
            : part.Blocks.TryGetValue(block, out float[]? list) ? list[list.Length == 1 ? 0 : model]
            : 0;

    /// <summary>Each block named in <paramref name="part"/> has layers in the UNet, and as many transformer models as its list has scales (or one).</summary>
    private static void CheckBlocks(string name, Part part, List<CrossAttentionLayer> layers)
    {
        if (part.Blocks is null)
        {
            return;
        }
        foreach ((int index, float[] list) in part.Blocks)
        {
            int models = 0;
            var withAttentions = new List<string>();
            foreach (CrossAttentionLayer layer in layers)
            {
                if (layer.Part != name) continue;
                if (layer.Block == index) models = Math.Max(models, layer.Model + 1);
                if (!withAttentions.Contains($"block_{layer.Block}")) withAttentions.Add($"block_{layer.Block}");
            }
            if (models == 0)
            {
                throw new ArgumentException($"IP-Adapter block scales: '{name}.block_{index}' is no {name} block with attentions in this UNet " +
                    $"(those are {string.Join(", ", withAttentions)})");
            }
            if (list.Length != 1 && list.Length != models)
            {
                throw new ArgumentException($"IP-Adapter block scales: '{name}.block_{index}' lists {list.Length} scales; the block has {models} transformer models (give one for all, or one each)");
            }
        }
    }
}
