namespace Sd.Kernels.Convert;

/// <summary>One vector's worth of an element conversion, and the scalar path for inputs shorter than a vector.</summary>
internal unsafe interface IConvertBlock<TIn, TOut>
    where TIn : unmanaged
    where TOut : unmanaged
{
    static abstract int Lanes { get; }

    static abstract void Block(TIn* src, TOut* dst);

    static abstract void Scalar(TIn* src, TOut* dst, nint count);
}

/// <summary>The loop and the span entry shared by the widening and narrowing conversions.</summary>
internal static unsafe class ConvertLoop
{
    /// <summary>
    /// The one loop shape of every vector path: whole vectors, then an overlapping last vector (src and dst never
    /// alias, so converting a few elements twice is harmless). Generic over a struct, so each conversion gets its own
    /// compiled, inlined copy.
    /// </summary>
    public static void Run<TIn, TOut, T>(TIn* src, TOut* dst, nint count)
        where TIn : unmanaged
        where TOut : unmanaged
        where T : struct, IConvertBlock<TIn, TOut>
    {
        if (count < T.Lanes)
        {
            T.Scalar(src, dst, count);
            return;
        }
        nint last = count - T.Lanes;
        for (nint i = 0; i < last; i += T.Lanes)
        {
            T.Block(src + i, dst + i);
        }
        T.Block(src + last, dst + last);
    }

    /// <summary>Runs <paramref name="kernel"/> over spans, refusing a destination shorter than the source.</summary>
    public static void Spans<TIn, TOut>(delegate*<TIn*, TOut*, nint, void> kernel, ReadOnlySpan<TIn> source, Span<TOut> destination)
        where TIn : unmanaged
        where TOut : unmanaged
    {
        if (destination.Length < source.Length)
        {
            throw new ArgumentException(
                $"destination holds {destination.Length} values, source has {source.Length}", nameof(destination));
        }
        fixed (TIn* src = source)
        fixed (TOut* dst = destination)
        {
            kernel(src, dst, source.Length);
        }
    }
}
