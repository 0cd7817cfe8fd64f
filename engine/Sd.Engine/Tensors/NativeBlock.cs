using Sd.Kernels.Memory;

namespace Sd.Engine.Tensors;

/// <summary>
/// A 64-byte aligned (one cache line, one AVX-512 vector) native float buffer. Weights and activations live here,
/// outside the GC heap: no managed allocation per step and no GC pauses over gigabytes of weights.
/// </summary>
public sealed unsafe class NativeBlock : IDisposable
{
    public const int Alignment = 64;

    private float* _pointer;

    public NativeBlock(long floatCount, bool zero = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(floatCount);
        Length = floatCount;
        nuint bytes = checked((nuint)Math.Max(1, floatCount) * sizeof(float));
        _pointer = (float*)AlignedMemory.Allocate(bytes, zero);
        GC.AddMemoryPressure((long)bytes);
    }

    public long Length { get; }

    public float* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    public Span<float> Span => new(Pointer, checked((int)Length));

    public void Dispose()
    {
        if (_pointer != null)
        {
            AlignedMemory.Free(_pointer);
            _pointer = null;
            GC.RemoveMemoryPressure(Math.Max(1, Length) * sizeof(float));
        }
        GC.SuppressFinalize(this);
    }

    ~NativeBlock()
    {
        Dispose();
    }
}
