namespace Sd.Engine.Tensors;

/// <summary>
/// A float32 tensor over 64-byte aligned native memory: either owning its <see cref="NativeBlock"/> or a view into
/// an arena slot. Inside the engine activations are channels-last (NHWC); NCHW appears only at the public boundary
/// (.npy files, the library API), as in PyTorch.
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    private readonly NativeBlock? _owned;
    private readonly Tensor? _reshaped; // the tensor a Reshape view shares memory with
    private readonly float* _data;
    private readonly int[] _shape;
    private bool _disposed;

    private Tensor(float* data, int[] shape, NativeBlock? owned, Tensor? reshaped = null)
    {
        _data = data;
        _shape = shape;
        _owned = owned;
        _reshaped = reshaped;
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
        ArgumentNullException.ThrowIfNull(data);
        if (((nint)data & (NativeBlock.Alignment - 1)) != 0)
        {
            throw new ArgumentException("tensor data must be 64-byte aligned", nameof(data));
        }
        return new Tensor(data, shape.ToArray(), null);
    }

    /// <summary>
    /// The first element. A disposed tensor (or a reshape of one) throws <see cref="ObjectDisposedException"/> rather
    /// than hand out memory that may already hold something else.
    /// </summary>
    public float* Data => IsDisposed ? throw new ObjectDisposedException(ToString(), "the tensor was disposed; its memory is no longer its own") : _data;

    private bool IsDisposed => _disposed || (_reshaped?.IsDisposed ?? false);

    public long Length { get; }

    public ReadOnlySpan<int> Shape => _shape;

    public int Rank => _shape.Length;

    /// <summary>The size of <paramref name="axis"/>; a negative axis counts from the last, as in PyTorch.</summary>
    public int Dim(int axis)
    {
        int index = axis < 0 ? _shape.Length + axis : axis;
        return (uint)index < (uint)_shape.Length
            ? _shape[index]
            : throw new ArgumentOutOfRangeException(nameof(axis), axis, $"{this} has {_shape.Length} axes");
    }

    /// <summary>The elements as a span; a tensor of more than 2^31 - 1 elements is refused (a span cannot hold it).</summary>
    public Span<float> Span => Length <= int.MaxValue
        ? new(Data, (int)Length)
        : throw new InvalidOperationException($"{this} holds {Length} elements, more than a span can address");

    /// <summary>Same memory, another shape with the same element count.</summary>
    public Tensor Reshape(ReadOnlySpan<int> shape)
    {
        if (ElementCount(shape) != Length)
        {
            throw new ArgumentException($"cannot reshape {ShapeText(_shape)} ({Length} elements) to {ShapeText(shape)}", nameof(shape));
        }
        return new Tensor(Data, shape.ToArray(), null, this);
    }

    /// <summary>Throws <see cref="ArithmeticException"/> with <paramref name="message"/> if any value is NaN or infinite.</summary>
    public void ThrowIfNotFinite(string message)
    {
        if (!AllFinite(Span))
        {
            throw new ArithmeticException(message);
        }
    }

    /// <summary>Whether no value is NaN or infinite (for checks whose message would cost a string per call).</summary>
    public static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float v in values)
        {
            if (!float.IsFinite(v))
            {
                return false;
            }
        }
        return true;
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

    public void Dispose()
    {
        _disposed = true;
        _owned?.Dispose();
    }
}
