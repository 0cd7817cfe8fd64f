namespace Sd.Engine.Tensors;

/// <summary>
/// A float32 tensor over 64-byte aligned native memory: either owning its <see cref="NativeBlock"/> or a view into
/// an arena slot. Inside the engine activations are channels-last (NHWC); NCHW appears only at the public boundary
/// (.npy files, the library API), as in PyTorch.
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    private readonly NativeBlock? _owned;
    private readonly int[] _shape;

    private Tensor(float* data, int[] shape, NativeBlock? owned)
    {
        Data = data;
        _shape = shape;
        _owned = owned;
        Length = ElementCount(shape);
    }

    /// <summary>A new zero-filled tensor that owns its memory.</summary>
    public static Tensor Allocate(ReadOnlySpan<int> shape)
    {
        int[] copy = shape.ToArray();
        var block = new NativeBlock(ElementCount(copy));
        return new Tensor(block.Pointer, copy, block);
    }

    /// <summary>A view over memory owned elsewhere (an arena slot); disposing it frees nothing.</summary>
    public static Tensor View(float* data, ReadOnlySpan<int> shape)
    {
        if (((nint)data & (NativeBlock.Alignment - 1)) != 0)
        {
            throw new ArgumentException("tensor data must be 64-byte aligned", nameof(data));
        }
        return new Tensor(data, shape.ToArray(), null);
    }

    public float* Data { get; }

    public long Length { get; }

    public ReadOnlySpan<int> Shape => _shape;

    public int Rank => _shape.Length;

    public int Dim(int axis) => _shape[axis < 0 ? _shape.Length + axis : axis];

    public Span<float> Span => new(Data, checked((int)Length));

    /// <summary>Same memory, another shape with the same element count.</summary>
    public Tensor Reshape(ReadOnlySpan<int> shape)
    {
        if (ElementCount(shape) != Length)
        {
            throw new ArgumentException($"cannot reshape {ShapeText(_shape)} ({Length} elements) to {ShapeText(shape)}", nameof(shape));
        }
        return new Tensor(Data, shape.ToArray(), null);
    }

    /// <summary>Throws <see cref="ArithmeticException"/> with <paramref name="message"/> if any value is NaN or infinite.</summary>
    public void ThrowIfNotFinite(string message)
    {
        foreach (float v in Span)
        {
            if (!float.IsFinite(v))
            {
                throw new ArithmeticException(message);
            }
        }
    }

    public static long ElementCount(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int dim in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(dim, nameof(shape));
            count = checked(count * dim);
        }
        return count;
    }

    public static string ShapeText(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public override string ToString() => $"Tensor{ShapeText(_shape)}";

    public void Dispose() => _owned?.Dispose();
}
