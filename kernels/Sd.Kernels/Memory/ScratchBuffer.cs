using System.Runtime.InteropServices;

namespace Sd.Kernels.Memory;

/// <summary>
/// A kernel's per-thread scratch: 64-byte aligned floats, allocated on first use and grown (never shrunk) when a call
/// needs more, so steady-state calls allocate nothing. The caller keeps the pointer and size in [ThreadStatic] fields.
/// </summary>
internal static unsafe class ScratchBuffer
{
    /// <summary>At least <paramref name="floats"/> floats at <paramref name="buffer"/>, reallocated (contents lost) if it holds fewer.</summary>
    public static float* Grow(ref float* buffer, ref nint size, nint floats)
    {
        if (floats > size)
        {
            NativeMemory.AlignedFree(buffer);
            buffer = null;
            size = 0;
            buffer = (float*)NativeMemory.AlignedAlloc((nuint)floats * sizeof(float), 64);
            size = floats;
        }
        return buffer;
    }
}
