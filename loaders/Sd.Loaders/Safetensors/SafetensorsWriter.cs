using System.Buffers.Binary;

using System.Text.Json;
using Sd.Loaders.IO;

namespace Sd.Loaders.Safetensors;

/// <summary>
/// Writes a standard .safetensors file (header padded with spaces to 8 bytes, tensors contiguous in the order
/// added). Used by <c>sd make-random-model</c>, by the built-in demo model (written to memory,
/// <see cref="SafetensorsFile.InMemory"/>) and by tests that need hand-made files. Saving is atomic
/// (<see cref="AtomicFile"/>).
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<Pending> _tensors = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>A tensor to write: its bytes, or a callback that produces them while the file is written.</summary>
    private sealed record Pending(string Name, TensorDType DType, long[] Shape, long ByteLength, byte[]? Data, Action<Span<byte>>? Fill);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal) { ["format"] = "pt" };

    public void AddMetadata(string key, string value) => _metadata[key] = value;

    /// <summary>Adds a tensor from raw little-endian bytes (length must equal dtype size x element count).</summary>
    public void Add(string name, TensorDType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> data)
    {
        long bytes = ByteLength(name, dtype, shape);
        if (bytes != data.Length)
        {
            throw new ArgumentException($"tensor '{name}': {dtype.Name()} {TensorInfo.ShapeText(shape)} needs {bytes} bytes, got {data.Length}", nameof(data));
        }
        _tensors.Add(new Pending(name, dtype, shape.ToArray(), bytes, data.ToArray(), null));
    }

    /// <summary>
    /// Adds a tensor whose bytes <paramref name="fill"/> produces when the file is written (into a buffer of exactly
    /// dtype size x element count bytes), so a multi-gigabyte model never sits in memory at once.
    /// </summary>
    public void AddGenerated(string name, TensorDType dtype, ReadOnlySpan<long> shape, Action<Span<byte>> fill)
    {
        long bytes = ByteLength(name, dtype, shape);
        if (bytes > int.MaxValue)
        {
            throw new ArgumentException($"tensor '{name}' is {bytes} bytes; at most 2 GiB per tensor", nameof(shape));
        }
        _tensors.Add(new Pending(name, dtype, shape.ToArray(), bytes, null, fill));
    }

    private long ByteLength(string name, TensorDType dtype, ReadOnlySpan<long> shape)
    {
        if (!_names.Add(name))
        {
            throw new ArgumentException($"tensor '{name}' added twice", nameof(name));
        }
        long count = 1;
        foreach (long dim in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(dim, nameof(shape));
            count = checked(count * dim);
        }
        return checked(count * dtype.SizeInBytes());
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
                json.WriteNumberValue(offset + tensor.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += tensor.ByteLength;
            }
            json.WriteEndObject();
        }
        int padded = (int)((buffer.Length + 7) & ~7L);
        var header = new byte[padded];
        buffer.ToArray().CopyTo(header, 0);
        header.AsSpan((int)buffer.Length).Fill((byte)' ');
        return header;
    }

    /// <summary>The size in bytes of what <see cref="Write"/> produces.</summary>
    public long Length
    {
        get
        {
            long length = 8 + BuildHeader().Length;
            foreach (Pending tensor in _tensors)
            {
                length += tensor.ByteLength;
            }
            return length;
        }
    }

    public void Save(string path) => AtomicFile.Write(path, Write);

    public void Write(Stream stream)
    {
        byte[] header = BuildHeader();
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        byte[] buffer = [];
        foreach (Pending tensor in _tensors)
        {
            if (tensor.Data != null)
            {
                stream.Write(tensor.Data);
                continue;
            }
            if (buffer.Length < tensor.ByteLength)
            {
                buffer = new byte[tensor.ByteLength];
            }
            Span<byte> bytes = buffer.AsSpan(0, (int)tensor.ByteLength);
            tensor.Fill!(bytes);
            stream.Write(bytes);
        }
    }
}
