using System.Text.Json;
using Sd.Loaders.IO;

namespace Sd.Loaders.Config;

/// <summary>
/// Typed access to a JSON config file (config.json, model_index.json, tokenizer_config.json). Absent keys and
/// JSON nulls take the caller's default, as diffusers' <c>from_config</c> does; a present value of the wrong type is
/// an error naming the file and key, never a silent default.
/// </summary>
public sealed class JsonConfig
{
    private readonly JsonElement _root;

    private JsonConfig(string path, JsonElement root)
    {
        Path = path;
        _root = root;
    }

    public string Path { get; }

    /// <summary>Reads and parses a config file; config files are small, so anything over 16 MiB is refused.</summary>
    public static JsonConfig Load(string path)
    {
        return Parse(path, InputFile.ReadAll(path, "config file", maxBytes: 16 * 1024 * 1024));
    }

    public static JsonConfig Parse(string path, ReadOnlyMemory<byte> utf8Json)
    {
        try
        {
            // Python's json.dump writes NaN/Infinity literals (diffusers' DPM configs hold -Infinity): read as strings.
            using JsonDocument document = JsonDocument.Parse(PythonJsonLiterals.Quote(utf8Json), new JsonDocumentOptions
            {
                AllowTrailingCommas = true,
                CommentHandling = JsonCommentHandling.Skip,
                MaxDepth = 32,
            });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidFileException(path, $"expected a JSON object, found {document.RootElement.ValueKind}");
            }
            JsonText.Validate(path, document.RootElement, "");
            return new JsonConfig(path, document.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new InvalidFileException(path, $"not well-formed JSON: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(path, $"not well-formed JSON: {e.Message}", e);
        }
    }

    public bool Has(string key) => _root.TryGetProperty(key, out JsonElement value) && value.ValueKind != JsonValueKind.Null;

    public IEnumerable<JsonProperty> Properties => _root.EnumerateObject();

    /// <summary>The object under <paramref name="key"/> as a config of the same file; null when absent or JSON null.</summary>
    public JsonConfig? Child(string key) => GetRaw(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Object } value => new JsonConfig(Path, value),
        { } value => throw Wrong(key, "an object", value),
    };

    public JsonElement? GetRaw(string key) =>
        _root.TryGetProperty(key, out JsonElement value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public int GetInt(string key, int fallback) =>
        GetRaw(key) is { } value ? ToInt(key, value) : fallback;

    public int? GetIntOrNull(string key) => GetRaw(key) is { } value ? ToInt(key, value) : null;

    public double GetDouble(string key, double fallback)
    {
        if (GetRaw(key) is not { } value)
        {
            return fallback;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || !double.IsFinite(number))
        {
            throw Wrong(key, "a finite number", value);
        }
        return number;
    }

    public double? GetDoubleOrNull(string key) => Has(key) ? GetDouble(key, 0) : null;

    /// <summary>
    /// A number that may also be infinite: a finite number, or Python's <c>Infinity</c>/<c>-Infinity</c> literal
    /// (diffusers writes <c>lambda_min_clipped</c> as <c>-Infinity</c>); NaN is refused.
    /// </summary>
    public double GetDoubleOrInfinity(string key, double fallback)
    {
        if (GetRaw(key) is { ValueKind: JsonValueKind.String } value
            && PythonJsonLiterals.Value(value.GetString()!) is { } literal && !double.IsNaN(literal))
        {
            return literal;
        }
        return GetDouble(key, fallback);
    }

    public bool GetBool(string key, bool fallback)
    {
        if (GetRaw(key) is not { } value)
        {
            return fallback;
        }
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong(key, "true or false", value),
        };
    }

    public string GetString(string key, string fallback) => GetStringOrNull(key) ?? fallback;

    public string? GetStringOrNull(string key)
    {
        if (GetRaw(key) is not { } value)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Wrong(key, "a string", value);
    }

    public string[] GetStrings(string key, string[] fallback)
    {
        if (GetRaw(key) is not { } value)
        {
            return fallback;
        }
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Wrong(key, "a list of strings", value);
        }
        var result = new string[value.GetArrayLength()];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray())
        {
            result[i++] = item.ValueKind == JsonValueKind.String ? item.GetString()! : throw Wrong(key, "a list of strings", value);
        }
        return result;
    }

    public int[] GetInts(string key, int[] fallback)
    {
        if (GetRaw(key) is not { } value)
        {
            return fallback;
        }
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Wrong(key, "a list of integers", value);
        }
        var result = new int[value.GetArrayLength()];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray())
        {
            result[i++] = ToInt(key, item);
        }
        return result;
    }

    public float[]? GetFloatsOrNull(string key)
    {
        if (GetRaw(key) is not { } value)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Wrong(key, "a list of numbers", value);
        }
        var result = new float[value.GetArrayLength()];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray())
        {
            result[i++] = item.ValueKind == JsonValueKind.Number && item.TryGetDouble(out double number) && double.IsFinite(number)
                ? (float)number
                : throw Wrong(key, "a list of finite numbers", value);
        }
        return result;
    }

    /// <summary>
    /// diffusers lets many per-block settings be one value for every block or a list with one entry per block;
    /// this returns the per-block array either way.
    /// </summary>
    public int[] GetIntPerBlock(string key, int blockCount, int fallback)
    {
        if (GetRaw(key) is not { } value)
        {
            return Filled(blockCount, fallback);
        }
        if (value.ValueKind == JsonValueKind.Number)
        {
            return Filled(blockCount, ToInt(key, value));
        }
        int[] list = GetInts(key, []);
        if (list.Length != blockCount)
        {
            throw new InvalidFileException(Path, $"'{key}' lists {list.Length} values but the model has {blockCount} blocks");
        }
        return list;
    }

    public bool[] GetBoolPerBlock(string key, int blockCount, bool fallback)
    {
        if (GetRaw(key) is not { } value)
        {
            return Filled(blockCount, fallback);
        }
        if (value.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return Filled(blockCount, value.ValueKind == JsonValueKind.True);
        }
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() != blockCount)
        {
            throw Wrong(key, $"true/false or a list of {blockCount} of them", value);
        }
        var result = new bool[blockCount];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray())
        {
            result[i++] = item.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Wrong(key, "a list of true/false", value),
            };
        }
        return result;
    }

    private static T[] Filled<T>(int count, T value)
    {
        var result = new T[count];
        Array.Fill(result, value);
        return result;
    }

    private int ToInt(string key, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number))
        {
            return number;
        }
        throw Wrong(key, "an integer", value);
    }

    public InvalidFileException Wrong(string key, string expected, JsonElement found)
    {
        string text = found.GetRawText();
        if (text.Length > 80)
        {
            text = text[..80] + "...";
        }
        return new InvalidFileException(Path, $"'{key}' must be {expected}, found {text}");
    }
}
