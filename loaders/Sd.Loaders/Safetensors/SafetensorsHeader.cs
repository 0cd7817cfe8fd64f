using System.Text.Json;
using System.Text.Unicode;

namespace Sd.Loaders.Safetensors;

/// <summary>
/// Parses and validates a safetensors header: an 8-byte little-endian length, then a UTF-8 JSON object mapping
/// tensor names to <c>{dtype, shape, data_offsets}</c>, plus an optional <c>__metadata__</c> string map.
/// Every tensor must lie inside the data area with a byte length of exactly dtype size x element count, and the
/// tensors must tile the data area with no gap or overlap (the rule of the reference Rust implementation).
/// </summary>
public static class SafetensorsHeader
{
    /// <summary>The reference implementation's cap on header size; real headers are well under 1 MiB.</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    public const string MetadataKey = "__metadata__";

    public sealed record Parsed(IReadOnlyList<TensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata);

    /// <summary>Checks the length prefix against the file size before anything is read or allocated.</summary>
    public static long ValidateHeaderLength(string path, ulong headerLength, long fileLength)
    {
        if (headerLength < 2)
        {
            throw new InvalidFileException(path, $"safetensors header length is {headerLength} bytes; a header is a JSON object, at least 2 bytes");
        }
        if (headerLength > MaxHeaderBytes)
        {
            throw new InvalidFileException(path, $"safetensors header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit (corrupt file or not safetensors)");
        }
        if ((long)headerLength > fileLength - 8)
        {
            throw new InvalidFileException(path, $"safetensors header length {headerLength} runs past the end of the file ({fileLength} bytes): truncated or not safetensors");
        }
        return (long)headerLength;
    }

    public static Parsed Parse(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        if (!Utf8.IsValid(header))
        {
            throw new InvalidFileException(path, "safetensors header is not valid UTF-8");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new InvalidFileException(path, $"safetensors header is not well-formed JSON: {e.Message}", e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidFileException(path, $"safetensors header must be a JSON object, found {root.ValueKind}");
            }
            Config.JsonText.Validate(path, root, "");
            var tensors = new List<TensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in root.EnumerateObject())
            {
                if (!names.Add(property.Name))
                {
                    throw new InvalidFileException(path, $"safetensors header names '{property.Name}' twice");
                }
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(path, property.Value, metadata);
                }
                else
                {
                    tensors.Add(ReadTensor(path, property.Name, property.Value));
                }
            }
            CheckTiling(path, tensors, dataLength);
            return new Parsed(tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidFileException(path, $"safetensors {MetadataKey} must be an object of strings, found {value.ValueKind}");
        }
        foreach (JsonProperty entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw new InvalidFileException(path, $"safetensors {MetadataKey} entry '{entry.Name}' must be a string, found {entry.Value.ValueKind}");
            }
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
            {
                throw new InvalidFileException(path, $"safetensors {MetadataKey} names '{entry.Name}' twice");
            }
        }
    }

    private static TensorInfo ReadTensor(string path, string name, JsonElement value)
    {
        if (name.Length == 0)
        {
            throw new InvalidFileException(path, "safetensors header has a tensor with an empty name");
        }
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidFileException(path, $"tensor '{name}': expected an object with dtype, shape, data_offsets; found {value.ValueKind}");
        }
        string? dtypeText = null;
        long[]? shape = null;
        long[]? offsets = null;
        foreach (JsonProperty field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype" when dtypeText is null && field.Value.ValueKind == JsonValueKind.String:
                    dtypeText = field.Value.GetString()!;
                    break;
                case "shape" when shape is null:
                    shape = ReadNonNegativeIntegers(path, name, "shape", field.Value);
                    break;
                case "data_offsets" when offsets is null:
                    offsets = ReadNonNegativeIntegers(path, name, "data_offsets", field.Value);
                    break;
                default:
                    throw new InvalidFileException(path, $"tensor '{name}': unexpected, repeated or mistyped field '{field.Name}'");
            }
        }
        if (dtypeText is null || shape is null || offsets is null)
        {
            throw new InvalidFileException(path, $"tensor '{name}': missing {(dtypeText is null ? "dtype" : shape is null ? "shape" : "data_offsets")}");
        }
        if (!TensorDTypes.TryParse(dtypeText, out TensorDType dtype))
        {
            throw new InvalidFileException(path, $"tensor '{name}': unknown dtype '{dtypeText}'");
        }
        if (offsets.Length != 2 || offsets[1] < offsets[0])
        {
            throw new InvalidFileException(path, $"tensor '{name}': data_offsets must be [begin, end] with begin <= end, found [{string.Join(", ", offsets)}]");
        }
        long expected = ByteLength(path, name, dtype, shape);
        long actual = offsets[1] - offsets[0];
        if (actual != expected)
        {
            throw new InvalidFileException(path, $"tensor '{name}': {dtype.Name()} {TensorInfo.ShapeText(shape)} needs {expected} bytes but data_offsets span {actual}");
        }
        return new TensorInfo(name, dtype, shape, offsets[0], actual);
    }

    private static long ByteLength(string path, string name, TensorDType dtype, long[] shape)
    {
        try
        {
            long count = 1;
            foreach (long dim in shape)
            {
                count = checked(count * dim);
            }
            return checked(count * dtype.SizeInBytes());
        }
        catch (OverflowException)
        {
            throw new InvalidFileException(path, $"tensor '{name}': shape {TensorInfo.ShapeText(shape)} overflows 64-bit size");
        }
    }

    private static long[] ReadNonNegativeIntegers(string path, string name, string field, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidFileException(path, $"tensor '{name}': {field} must be an array of integers, found {value.ValueKind}");
        }
        int length = value.GetArrayLength();
        if (length > 16)
        {
            throw new InvalidFileException(path, $"tensor '{name}': {field} has {length} entries; at most 16 are supported");
        }
        var result = new long[length];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long number) || number < 0)
            {
                throw new InvalidFileException(path, $"tensor '{name}': {field}[{i}] must be a non-negative 64-bit integer, found {item.GetRawText()}");
            }
            result[i++] = number;
        }
        return result;
    }

    private static void CheckTiling(string path, List<TensorInfo> tensors, long dataLength)
    {
        var sorted = tensors.ToArray();
        Array.Sort(sorted, static (a, b) => a.DataOffset != b.DataOffset
            ? a.DataOffset.CompareTo(b.DataOffset)
            : a.ByteLength.CompareTo(b.ByteLength));
        long position = 0;
        TensorInfo? previous = null;
        foreach (TensorInfo tensor in sorted)
        {
            if (tensor.DataOffset + tensor.ByteLength > dataLength)
            {
                throw new InvalidFileException(path, $"tensor '{tensor.Name}': bytes [{tensor.DataOffset}, {tensor.DataOffset + tensor.ByteLength}) lie outside the {dataLength}-byte data area (truncated file?)");
            }
            if (tensor.DataOffset < position)
            {
                throw new InvalidFileException(path, $"tensor '{tensor.Name}' overlaps tensor '{previous!.Name}' in the data area");
            }
            if (tensor.DataOffset > position)
            {
                throw new InvalidFileException(path, $"gap of {tensor.DataOffset - position} bytes before tensor '{tensor.Name}' in the data area");
            }
            position = tensor.DataOffset + tensor.ByteLength;
            previous = tensor;
        }
        if (position != dataLength)
        {
            throw new InvalidFileException(path, $"data area is {dataLength} bytes but the tensors cover {position}: trailing bytes");
        }
    }
}
