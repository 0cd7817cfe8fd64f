namespace Sd.Engine.Tensors;

/// <summary>One native block laid out by an <see cref="ArenaPlan"/>; slots are views at fixed offsets.</summary>
public sealed unsafe class TensorArena : IDisposable
{
    private readonly NativeBlock _block;
    private readonly long[] _offsets;
    private readonly long[] _sizes;

    public TensorArena(ArenaPlan plan)
    {
        (_offsets, long total) = plan.Solve();
        _sizes = new long[plan.Count];
        for (int i = 0; i < _sizes.Length; i++)
        {
            _sizes[i] = plan.SizeOf(i);
        }
        _block = new NativeBlock(total);
        TotalFloats = total;
    }

    public long TotalFloats { get; }

    public long TotalBytes => TotalFloats * sizeof(float);

    /// <summary>A tensor view on slot <paramref name="id"/>; the shape must fit the planned size.</summary>
    public Tensor Slot(int id, ReadOnlySpan<int> shape)
    {
        long needed = Tensor.ElementCount(shape);
        if (needed > _sizes[id])
        {
            throw new ArgumentException($"slot {id} holds {_sizes[id]} floats, shape {Tensor.ShapeText(shape)} needs {needed}", nameof(shape));
        }
        return Tensor.View(_block.Pointer + _offsets[id], shape);
    }

    public void Dispose() => _block.Dispose();
}
