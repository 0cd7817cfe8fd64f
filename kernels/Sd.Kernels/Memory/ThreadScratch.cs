using System.Runtime.InteropServices;

namespace Sd.Kernels.Memory;

/// <summary>
/// A kernel's per-thread scratch: 64-byte aligned floats, allocated on a thread's first use and grown (never shrunk)
/// when a call needs more, so steady-state calls allocate nothing. Kept in a [ThreadStatic] field, it is owned by an
/// object rather than held as a raw pointer: when its thread ends, the field goes with it and the finalizer returns
/// the memory. A host that retires and recreates threads (the .NET thread pool, a web server) would otherwise leak
/// every retired caller thread's buffers, tens of MiB each.
/// </summary>
internal sealed unsafe class ThreadScratch
{
    private float* _buffer;
    private nint _floats;

    /// <summary>At least <paramref name="floats"/> floats in <paramref name="slot"/>'s buffer (made on first use), reallocated (contents lost) if it holds fewer.</summary>
    public static float* Get(ref ThreadScratch? slot, nint floats) => (slot ??= new ThreadScratch()).Grow(floats);

    private float* Grow(nint floats)
    {
        if (floats > _floats)
        {
            NativeMemory.AlignedFree(_buffer);
            _buffer = null;
            _floats = 0;
            _buffer = (float*)NativeMemory.AlignedAlloc((nuint)floats * sizeof(float), 64);
            _floats = floats;
        }
        return _buffer;
    }

    ~ThreadScratch() => NativeMemory.AlignedFree(_buffer);
}
