using System.Runtime.CompilerServices;
using Sd.Kernels.Memory;

namespace Sd.Kernels.Convolution;

/// <summary>
/// Where a convolution's patches read their NHWC input, for the kernels that gather them (the implicit-GEMM A packer
/// and <see cref="FewOutputsConv"/>): the origin of an output pixel's patch, the input pixel under a tap, and a row
/// of zeros for the taps that fall in the padding.
/// </summary>
internal static unsafe class ConvPatches
{
    private static float* s_zeros;
    private static int s_zeroFloats;
    private static readonly object s_zerosLock = new();

    /// <summary>
    /// At least <paramref name="floats"/> zeros for padding taps to read, grown to the widest input so far. An
    /// outgrown buffer is not freed: a call on another thread could still be reading it (a few KiB, grown a handful
    /// of times per process).
    /// </summary>
    public static float* Zeros(int floats)
    {
        lock (s_zerosLock)
        {
            if (floats > s_zeroFloats)
            {
                s_zeros = (float*)AlignedMemory.Allocate((nuint)floats * sizeof(float), zero: true);
                s_zeroFloats = floats;
            }
            return s_zeros;
        }
    }

    /// <summary>
    /// Output pixel <paramref name="m"/>'s image and the input row and column of its patch's top-left tap (negative
    /// in the padding); <paramref name="outHeight"/> and <paramref name="outWidth"/> are the shape's, passed in so
    /// that callers compute them once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Origin(in ConvShape s, int outHeight, int outWidth, int m, out int image, out int top, out int left)
    {
        int ox = m % outWidth;
        int rest = m / outWidth;
        image = rest / outHeight;
        top = rest % outHeight * s.StrideH - s.PadTop;
        left = ox * s.StrideW - s.PadLeft;
    }

    /// <summary>Channel 0 of input pixel (y, x) of <paramref name="image"/>, or null where (y, x) is in the padding.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float* Pixel(in ConvShape s, float* input, int image, int y, int x) =>
        (uint)y >= (uint)s.Height || (uint)x >= (uint)s.Width
            ? null
            : input + (((nint)image * s.Height + y) * s.Width + x) * s.PixelStride;
}
