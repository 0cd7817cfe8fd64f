using System.Buffers.Binary;

using System.Text.Json;
using Sd.Loaders.IO;

namespace Sd.Loaders.Safetensors;

/// <summary>
/// Writes a standard .safetensors file (header padded with spaces to 8 bytes, tensors contiguous in the order
/// added). Used by <c>sd make-random-model</c> and by tests that need hand-made files. Saving is atomic
/// (<see cref="AtomicFile"/>).
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<(string Name, TensorDType DType, long[] Shape, byte[] Data)> _tensors = new();
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal) { ["format"] = "pt" };

    public void AddMetadata(string key, string value) => _metadata[key] = value;

    /// <summary>Adds a tensor from raw little-endian bytes (length must equal dtype size x element count).</summary>
    public void Add(string name, TensorDType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> data)
    {
        long count = 1;
        foreach (long dim in shape)
        {
            count = checked(count * dim);
        }
        if (count * dtype.SizeInBytes() != data.Length)
        {
            throw new ArgumentException($"tensor '{name}': {dtype.Name()} {TensorInfo.ShapeText(shape)} needs {count * dtype.SizeInBytes()} bytes, got {data.Length}", nameof(data));
        }
        foreach (var existing in _tensors)
        {
            if (existing.Name == name)
            {
                throw new ArgumentException($"tensor '{name}' added twice", nameof(name));
            }
        }
        _tensors.Add((name, dtype, shape.ToArray(), data.ToArray()));
    }

    public void AddFloat32(string name, ReadOnlySpan<long> shape, ReadOnlySpan<float> values) =>
        Add(name, TensorDType.F32, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    /// <summary>The header bytes (length prefix excluded), padded with spaces to a multiple of 8.</summary>
    public byte[] BuildHeader()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject(SafetensorsHeader.MetadataKey);
            foreach ((string key, string value) in _metadata)
            {
                json.WriteString(key, value);
            }
            json.WriteEndObject();
            long offset = 0;
            foreach (var tensor in _tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", tensor.DType.Name());
                json.WriteStartArray("shape");
                foreach (long dim in tensor.Shape)
                {
                    json.WriteNumberValue(dim);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + tensor.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += tensor.Data.Length;
            }
            json.WriteEndObject();
        }
        int padded = (int)((buffer.Length + 7) & ~7L);
        var header = new byte[padded];
        buffer.ToArray().CopyTo(header, 0);
        header.AsSpan((int)buffer.Length).Fill((byte)' ');
        return header;
    }

    public void Save(string path) => AtomicFile.Write(path, Write);

    public void Write(Stream stream)
    {
        byte[] header = BuildHeader();
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var tensor in _tensors)
        {
            stream.Write(tensor.Data);
        }
    }
}
