using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// The activation-generic loops of <see cref="ActivationKernels"/> at one vector width. Generic over the activation
/// (a struct), so each (width, activation) pair is its own JIT-specialized loop with the function inlined.
/// </summary>
internal unsafe interface IWidth
{
    static abstract void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation;

    static abstract void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation;
}

internal readonly unsafe struct ScalarWidth : IWidth
{
    public static void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation
    {
        for (nint i = 0; i < count; i++)
        {
            dst[i] = TAct.Apply(src[i]);
        }
    }

    public static void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation
    {
        for (nint r = 0; r < rows; r++)
        {
            float* s = src + r * channels;
            float* d = dst + r * channels;
            for (nint c = 0; c < channels; c++)
            {
                d[c] = TAct.Apply(s[c] + bias[c]);
            }
        }
    }
}

internal readonly unsafe struct Width256 : IWidth
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation => VectorWidth.Apply<Vector256<float>, F32x8, TAct>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation => VectorWidth.BiasAdd<Vector256<float>, F32x8, TAct>(src, bias, dst, rows, channels);
}

internal readonly unsafe struct Width512 : IWidth
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation => VectorWidth.Apply<Vector512<float>, F32x16, TAct>(src, dst, count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation => VectorWidth.BiasAdd<Vector512<float>, F32x16, TAct>(src, bias, dst, rows, channels);
}

/// <summary>
/// The vector loops of both widths, written once: generic over the width's operations (<see cref="IF32Vector{TVec}"/>)
/// and the activation, all structs, so each (width, activation) pair still compiles to its own inlined loop.
/// </summary>
internal static unsafe class VectorWidth
{
    // Inlined into Width256/Width512, whose addresses ActivationKernels takes: the loop is the function body, no jump.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Apply<TVec, V, TAct>(float* src, float* dst, nint count)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
        where TAct : IActivation
    {
        nint i = 0;
        for (; i <= count - 2 * V.Count; i += 2 * V.Count)
        {
            TVec a = V.Apply<TAct>(V.Load(src + i));
            TVec b = V.Apply<TAct>(V.Load(src + i + V.Count));
            V.Store(a, dst + i);
            V.Store(b, dst + i + V.Count);
        }
        for (; i < count; i += V.Count)
        {
            TVec mask = V.Mask(count - i);
            V.MaskedStore(dst + i, mask, V.Apply<TAct>(V.MaskedLoad(src + i, mask)));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void BiasAdd<TVec, V, TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
        where TAct : IActivation
    {
        for (nint r = 0; r < rows; r++)
        {
            float* s = src + r * channels;
            float* d = dst + r * channels;
            nint c = 0;
            for (; c <= channels - 2 * V.Count; c += 2 * V.Count)
            {
                TVec a = V.Apply<TAct>(V.Add(V.Load(s + c), V.Load(bias + c)));
                TVec b = V.Apply<TAct>(V.Add(V.Load(s + c + V.Count), V.Load(bias + c + V.Count)));
                V.Store(a, d + c);
                V.Store(b, d + c + V.Count);
            }
            for (; c < channels; c += V.Count)
            {
                TVec mask = V.Mask(channels - c);
                TVec x = V.Add(V.MaskedLoad(s + c, mask), V.MaskedLoad(bias + c, mask));
                V.MaskedStore(d + c, mask, V.Apply<TAct>(x));
            }
        }
    }
}
