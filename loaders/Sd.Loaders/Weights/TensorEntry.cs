using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Weights;

/// <summary>
/// A weight as a model component sees it: its diffusers name and shape, backed by a tensor in a mapped file. The
/// name and shape may differ from the stored ones (single-file key mapping; VAE attention weights stored as
/// [C,C,1,1] 1x1 convolutions and used as [C,C] linear weights, same element order).
/// </summary>
public sealed class TensorEntry
{
    public TensorEntry(string name, long[] shape, SafetensorsFile file, TensorInfo stored)
    {
        Name = name;
        Shape = shape;
        File = file;
        Stored = stored;
    }

    public string Name { get; }

    public long[] Shape { get; }

    public SafetensorsFile File { get; }

    public TensorInfo Stored { get; }

    public TensorDType DType => Stored.DType;

    public long ElementCount => Stored.ElementCount;

    /// <summary>Widens the tensor into <paramref name="destination"/>, then releases its mapped pages (read once at load).</summary>
    public void ReadFloat32(Span<float> destination)
    {
        File.ReadFloat32(Stored, destination);
        File.ReleasePages(Stored);
    }

    public float[] ReadFloat32()
    {
        var values = new float[checked((int)ElementCount)];
        ReadFloat32(values);
        return values;
    }

    public long[] ReadInt64() => File.ReadInt64(Stored);

    public override string ToString() => $"{Name} {DType.Name()} {TensorInfo.ShapeText(Shape)}";
}
