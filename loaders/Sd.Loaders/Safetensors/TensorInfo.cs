namespace Sd.Loaders.Safetensors;

/// <summary>
/// One tensor as a safetensors header describes it, after validation: <see cref="DataOffset"/> is relative to the
/// start of the data area and <see cref="ByteLength"/> equals dtype size x element count.
/// </summary>
public sealed class TensorInfo
{
    public TensorInfo(string name, TensorDType dtype, long[] shape, long dataOffset, long byteLength)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        DataOffset = dataOffset;
        ByteLength = byteLength;
    }

    public string Name { get; }

    public TensorDType DType { get; }

    public long[] Shape { get; }

    public long DataOffset { get; }

    public long ByteLength { get; }

    public long ElementCount => ByteLength / DType.SizeInBytes();

    public override string ToString() => $"{Name} {DType.Name()} {ShapeText(Shape)}";

    public static string ShapeText(ReadOnlySpan<long> shape)
    {
        return "[" + string.Join(", ", shape.ToArray()) + "]";
    }
}
